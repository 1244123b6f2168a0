"""How each variant's clients join channels and publish: the one part of the client that differs.

Two protocols, one adapter each, so one load client drives every variant:

- `ChannelPerSocket` (ceiling, tutorial, broadcaster): `WS /ws/{channel}` joins one channel
  for the life of the socket; a text frame sent on it is published to that channel.
- `Multiplexed` (the baked service): `WS /ws`, a `connect` frame with a token (minted by the
  harness, one per client), then `subscribe` commands, any number per connection; a publish
  is a `publish` command with an `id`, answered by a `reply` to the publisher alone.

Every variant sends `{"type": "message", "channel": ..., "seq": ..., "data": ...}` envelopes;
the client counts those alone.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect

from .tokens import Credential, Issuer


class Refused(Exception):
    """The server answered a setup command with an error, or not as the protocol says."""


async def open_client(url: str, open_timeout: float = 30.0) -> ClientConnection:
    """One WebSocket connection: no compression, no client pings, an unbounded receive queue
    (the server is what must bound things; the client must never be what throttles)."""
    return await connect(
        url,
        compression=None,
        ping_interval=None,
        max_queue=None,
        max_size=None,
        open_timeout=open_timeout,
        close_timeout=1,
    )


def abort_all(connections: Sequence[ClientConnection]) -> None:
    """Drop connections at once (the figures are taken; a close handshake would only cost time)."""
    for connection in connections:
        transport = connection.transport
        if transport is not None:
            transport.abort()


class Wire(Protocol):
    """A variant's protocol, as the load client uses it."""

    @property
    def multiplexed(self) -> bool:
        """Whether one connection may carry several channels (and publish to any)."""
        ...

    def credentials(self, count: int) -> list[Credential | None]:
        """What `count` subscribers will present, prepared ahead (outside any timed phase)."""
        ...

    async def subscriber(
        self,
        channels: Sequence[str],
        credential: Credential | None = None,
        open_timeout: float = 30.0,
    ) -> ClientConnection:
        """A connection that receives `channels`' messages from the moment this returns."""
        ...

    async def publisher(self, channels: Sequence[str]) -> ClientConnection:
        """A connection that may publish to `channels`."""
        ...

    def publish_frame(self, channel: str, data: str, command_id: int) -> str:
        """The text frame that publishes `data` (JSON text) to `channel`."""
        ...

    def http_headers(self) -> dict[str, str]:
        """Headers for the service's HTTP publish."""
        ...


@dataclass(frozen=True)
class ChannelPerSocket:
    """The baselines' protocol: the URL names the one channel a socket belongs to."""

    base: str  # ws://host:port

    @property
    def multiplexed(self) -> bool:
        return False

    def credentials(self, count: int) -> list[Credential | None]:
        return [None] * count

    async def subscriber(
        self,
        channels: Sequence[str],
        credential: Credential | None = None,
        open_timeout: float = 30.0,
    ) -> ClientConnection:
        if len(channels) != 1:
            raise ValueError(f"one channel per socket, not {len(channels)}")
        return await open_client(f"{self.base}/ws/{channels[0]}", open_timeout)

    async def publisher(self, channels: Sequence[str]) -> ClientConnection:
        # A member of the channel: it receives its own messages (the Publisher drains them).
        return await self.subscriber(channels)

    def publish_frame(self, channel: str, data: str, command_id: int) -> str:
        return data

    def http_headers(self) -> dict[str, str]:
        return {}


@dataclass(frozen=True)
class Multiplexed:
    """The baked service's protocol, with authentication on (see tokens.py)."""

    base: str  # ws://host:port
    issuer: Issuer

    @property
    def multiplexed(self) -> bool:
        return True

    def credentials(self, count: int) -> list[Credential | None]:
        return [self.issuer.issue() for _ in range(count)]

    async def subscriber(
        self,
        channels: Sequence[str],
        credential: Credential | None = None,
        open_timeout: float = 30.0,
    ) -> ClientConnection:
        """Connect, check the welcome names the token's user (authentication is on), then
        subscribe to every channel at once and wait for every reply."""
        credential = credential or self.issuer.issue()
        connection = await open_client(f"{self.base}/ws", open_timeout)
        try:
            async with asyncio.timeout(open_timeout):
                await connection.send(json.dumps({"type": "connect", "token": credential.token}))
                welcome = await _answer(connection, "welcome")
                if welcome.get("user") != credential.user:
                    raise Refused(
                        f"welcome names user {welcome.get('user')!r}, the token "
                        f"{credential.user!r}: is authentication off?"
                    )
                for number, channel in enumerate(channels, 1):
                    frame = {"type": "subscribe", "id": number, "channel": channel}
                    await connection.send(json.dumps(frame))
                for _ in channels:
                    await _answer(connection, "reply")
        except BaseException:
            abort_all([connection])
            raise
        return connection

    async def publisher(self, channels: Sequence[str]) -> ClientConnection:
        # Not subscribed: a publisher receives one reply per publish.
        return await self.subscriber(())

    def publish_frame(self, channel: str, data: str, command_id: int) -> str:
        return (
            f'{{"type":"publish","id":{command_id},"channel":{json.dumps(channel)},"data":{data}}}'
        )

    def http_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issuer.issue().token}"}


async def _answer(connection: ClientConnection, kind: str) -> dict[str, Any]:
    """The next frame, which must be of `kind`; message envelopes before it are skipped
    (a subscriber that reconnects while messages flow), an error frame raises Refused."""
    while True:
        raw = await connection.recv()
        frame = json.loads(raw)
        if not isinstance(frame, dict):
            raise Refused(f"expected {kind}, got {str(raw)[:200]}")
        if frame.get("type") == kind:
            return frame
        if frame.get("type") not in {"message", "resync"}:
            raise Refused(f"expected {kind}, got {str(raw)[:200]}")
