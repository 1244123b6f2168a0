"""The in-process backend: a publish is handed straight to this process's hub.

It serves one process (`WORKERS=1`). With several workers or hosts each
process would only see its own publishes; that is what a shared backend
such as Redis is for.
"""

from __future__ import annotations

from .backend import BroadcastUnavailable, Receiver


class MemoryBackend:
    """A Backend whose channels live in this process; always available while started."""

    def __init__(self) -> None:
        self._receiver: Receiver | None = None
        self._channels: set[str] = set()

    @property
    def channels(self) -> frozenset[str]:
        """The channels subscribed now: those the hub asked for and has not released."""
        return frozenset(self._channels)

    async def start(self, receiver: Receiver) -> None:
        """Hand every later publish on a subscribed channel to `receiver`."""
        self._receiver = receiver

    async def stop(self) -> None:
        """Forget the receiver and every subscription; idempotent."""
        self._receiver = None
        self._channels.clear()

    async def publish(self, channel: str, message: str) -> None:
        """Deliver at once, before returning; raises BroadcastUnavailable when stopped."""
        receiver = self._receiver
        if receiver is None:
            raise BroadcastUnavailable("the in-memory backend is not running")
        if channel in self._channels:
            receiver.deliver(channel, message)

    async def subscribe(self, channel: str) -> None:
        """Live at once; raises BroadcastUnavailable when stopped."""
        if self._receiver is None:
            raise BroadcastUnavailable("the in-memory backend is not running")
        self._channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)

    def ready(self) -> str | None:
        return None if self._receiver is not None else "the in-memory backend is not running"
