"""The contract between the hub and a message backend (in-memory or Redis).

A backend moves already-serialised messages between processes; it knows
nothing about WebSockets. The hub reference-counts channels and calls
`subscribe` for a channel's first local client and `unsubscribe` after its
last, so a backend only keeps the set of channels in use.
"""

from __future__ import annotations

from typing import Protocol

# What clients are told of an outage; the reason, which names hosts, is logged instead.
UNAVAILABLE = "broadcast unavailable: try again later"


class BroadcastUnavailable(Exception):
    """The backend cannot publish or subscribe right now (for example, Redis is down)."""


class Receiver(Protocol):
    """Where a backend hands what it receives: the hub."""

    def deliver(self, channel: str, message: str) -> None:
        """One message for `channel`, in publish order per publisher; must not block.

        `message` is the serialised envelope exactly as the publishing process
        passed it to `publish`; the hub forwards that text to its clients as is.
        """

    def resync(self) -> None:
        """The backend lost its connection and is back: messages may have been missed.

        The hub sends each of its clients a frame
        `{"type": "resync", "channel": ..., "origin": ..., "reason": ...}`, telling
        it to reload whatever state it keeps.
        """


class Backend(Protocol):
    """Publish/subscribe over named channels."""

    async def start(self, receiver: Receiver) -> None:
        """Connect and start handing messages to `receiver`."""

    async def stop(self) -> None:
        """Stop receiving and close every connection; idempotent."""

    async def publish(self, channel: str, message: str) -> None:
        """Send `message` to every subscriber of `channel` in every process.

        Raises BroadcastUnavailable at once (never hangs) when it cannot.
        """

    async def subscribe(self, channel: str) -> None:
        """Start receiving `channel`; returns once the subscription is live.

        Raises BroadcastUnavailable when it cannot; the channel is then not kept.
        """

    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving `channel`."""

    def ready(self) -> str | None:
        """None when publishing and every subscription are live, else why not."""
