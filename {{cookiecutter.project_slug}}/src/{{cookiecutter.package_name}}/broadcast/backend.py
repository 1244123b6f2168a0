"""The contract between the hub and a message backend (in-memory or Redis).

A backend numbers, keeps and moves serialised messages between processes; it
knows nothing about WebSockets. The hub reference-counts channels and calls
`subscribe` for a channel's first local client and `unsubscribe` after its
last, so a backend only keeps the set of channels in use.

Every message gets its channel's next offset and the channel's epoch from
the backend, atomically with storing it in the channel's history, so every
process and every subscriber sees one order (history.py says what an epoch is).
"""

from __future__ import annotations

from typing import Protocol

from .envelope import Draft, Position
from .history import History

# What clients are told of an outage; the reason, which names hosts, is logged instead.
UNAVAILABLE = "broadcast unavailable: try again later"


class BroadcastUnavailable(Exception):
    """The backend cannot publish or subscribe right now (for example, Redis is down)."""


class Receiver(Protocol):
    """Where a backend hands what it receives: the hub."""

    def deliver(self, channel: str, message: str, position: Position) -> None:
        """One envelope for `channel`, at `position`, in offset order; must not block.

        `message` is the serialised envelope the backend completed when it was
        published; the hub forwards that text to its clients as is.
        """

    def interrupted(self) -> None:
        """The backend lost its subscriptions: messages published from now on may not
        arrive until `resumed`."""

    def resumed(self) -> None:
        """Every channel in use is subscribed again after `interrupted`: the hub
        recovers what was missed from history (`history`), or sends `resync`."""


class Backend(Protocol):
    """Publish/subscribe over named channels, with offsets, epochs and history."""

    async def start(self, receiver: Receiver) -> None:
        """Connect and start handing messages to `receiver`."""

    async def stop(self) -> None:
        """Stop receiving and close every connection; idempotent."""

    async def publish(self, channel: str, message: Draft) -> Position:
        """Give `message` the channel's next offset, keep it in the channel's history and
        send it to every subscriber of `channel` in every process; its position.

        Raises BroadcastUnavailable at once (never hangs) when it cannot.
        """

    async def history(self, channel: str, since: int | None, limit: int | None = None) -> History:
        """The channel's position now and up to `limit` kept messages after offset
        `since` (none when `since` is None). Starts the channel's epoch if it has none.

        Raises BroadcastUnavailable when it cannot read.
        """

    async def subscribe(self, channel: str) -> None:
        """Start receiving `channel`; returns once the subscription is live.

        Raises BroadcastUnavailable when it cannot; the channel is then not kept.
        """

    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving `channel`."""

    def ready(self) -> str | None:
        """None when publishing and every subscription are live, else why not."""
