"""The in-process backend: a publish is handed straight to this process's hub.

It serves one process (`WORKERS=1`). With several workers or hosts each
process would only see its own publishes; that is what a shared backend
such as Redis is for. Offsets, epochs and history live in this process's
memory (history.py): a restart starts every channel on a new epoch.
"""

from __future__ import annotations

from ..settings import Settings
from .backend import BroadcastUnavailable, Receiver
from .envelope import Draft, Position
from .history import History, MemoryHistory


class MemoryBackend:
    """A Backend whose channels live in this process; always available while started."""

    def __init__(self, history: MemoryHistory | None = None) -> None:
        self._receiver: Receiver | None = None
        self._channels: set[str] = set()
        # Unless told otherwise: the settings' defaults.
        self.history_store = history or MemoryHistory(100, 300.0, 64 * 1024 * 1024)

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

    async def publish(self, channel: str, message: Draft) -> Position:
        """Number, keep and deliver at once, before returning; raises BroadcastUnavailable
        when stopped."""
        receiver = self._receiver
        if receiver is None:
            raise BroadcastUnavailable("the in-memory backend is not running")
        position, text = self.history_store.append(channel, message)
        if channel in self._channels:
            receiver.deliver(channel, text, position)
        return position

    async def history(self, channel: str, since: int | None, limit: int | None = None) -> History:
        """Where `channel` is now, and up to `limit` kept messages after offset `since`."""
        if self._receiver is None:
            raise BroadcastUnavailable("the in-memory backend is not running")
        return self.history_store.read(channel, since, limit)

    async def subscribe(self, channel: str) -> None:
        """Live at once; raises BroadcastUnavailable when stopped."""
        if self._receiver is None:
            raise BroadcastUnavailable("the in-memory backend is not running")
        self._channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)

    def ready(self) -> str | None:
        return None if self._receiver is not None else "the in-memory backend is not running"


def memory_backend(settings: Settings) -> MemoryBackend:
    """This process's backend, keeping history as the settings ask."""
    history = MemoryHistory(settings.history_size, settings.history_ttl, settings.history_max_bytes)
    return MemoryBackend(history)
