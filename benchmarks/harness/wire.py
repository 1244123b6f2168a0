"""How each variant's clients join channels and publish: the one part of the client that differs.

Two protocols, one adapter each, so one load client drives every variant:

- `ChannelPerSocket` (ceiling, tutorial, broadcaster): `WS /ws/{channel}` joins one channel
  for the life of the socket; a text frame sent on it is published to that channel.
- `Multiplexed` (the baked service): `WS /ws`, a `connect` frame with a token (minted by the
  harness, one per client), then `subscribe` commands, any number per connection; a publish
  is a `publish` command with an `id`, answered by a `reply` to the publisher alone.

Every variant sends `{"type": "message", "channel": ..., "data": ...}` envelopes, and the
client counts those alone. The baselines number them with `seq`; the service gives each its
place in the channel, `offset` (1, 2, 3, ... the same for every subscriber and process) and
`epoch` (changes when the channel's history was lost), and so do its publish and subscribe
replies. A subscribe may name the last place a client saw (`since`), and its reply then says
whether every message after it follows (`recovered`): `Multiplexed.resume` and `Position`
are that part, which the history and storm scenarios use.
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


@dataclass(frozen=True)
class Position:
    """A place in one of the service's channels: offsets count 1, 2, 3, ... within an epoch."""

    offset: int
    epoch: str

    def since(self) -> dict[str, Any]:
        """The subscribe command's `since` naming this place."""
        return {"offset": self.offset, "epoch": self.epoch}


@dataclass(frozen=True)
class Subscription:
    """A subscribe's reply: the channel's place when the subscription went live (the messages
    after it follow) and, when `since` was sent, whether every message after `since` comes
    first (`recovered`; None when no `since` was sent)."""

    channel: str
    position: Position
    recovered: bool | None


def position_of(frame: dict[str, Any]) -> Position:
    """The `offset` and `epoch` of a service frame (a message, a resync, a subscribe or publish
    reply). Raises Refused when it has none: a service from before history and recovery."""
    offset, epoch = frame.get("offset"), frame.get("epoch")
    if isinstance(offset, bool) or not isinstance(offset, int) or not isinstance(epoch, str):
        raise Refused(
            f"expected offset and epoch, got {json.dumps(frame)[:200]}: "
            "does the service number its messages (history and recovery)?"
        )
    return Position(offset, epoch)


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
        connection = await open_client(f"{self.base}/ws", open_timeout)
        try:
            async with asyncio.timeout(open_timeout):
                await _welcome(connection, credential or self.issuer.issue())
                for number, channel in enumerate(channels, 1):
                    frame = {"type": "subscribe", "id": number, "channel": channel}
                    await connection.send(json.dumps(frame))
                for _ in channels:
                    await _answer(connection, "reply")
        except BaseException:
            abort_all([connection])
            raise
        return connection

    async def resume(
        self,
        channel: str,
        since: Position | None,
        credential: Credential,
        open_timeout: float = 30.0,
    ) -> tuple[ClientConnection, Subscription]:
        """Connect as `credential` and subscribe to `channel`, from `since` when given (a
        client that reconnects). The messages after the returned subscription's reply are
        still to be read from the connection. Raises Refused on an error reply."""
        connection = await open_client(f"{self.base}/ws", open_timeout)
        try:
            async with asyncio.timeout(open_timeout):
                await _welcome(connection, credential)
                command: dict[str, Any] = {"type": "subscribe", "id": 1, "channel": channel}
                if since is not None:
                    command["since"] = since.since()
                await connection.send(json.dumps(command))
                reply = await _answer(connection, "reply")
        except BaseException:
            abort_all([connection])
            raise
        recovered = reply.get("recovered")
        if since is not None and not isinstance(recovered, bool):
            raise Refused(f"a subscribe with since got no recovered: {json.dumps(reply)[:200]}")
        return connection, Subscription(channel, position_of(reply), recovered)

    async def publisher(self, channels: Sequence[str]) -> ClientConnection:
        # Not subscribed: a publisher receives one reply per publish.
        return await self.subscriber(())

    def publish_frame(self, channel: str, data: str, command_id: int) -> str:
        return (
            f'{{"type":"publish","id":{command_id},"channel":{json.dumps(channel)},"data":{data}}}'
        )

    def http_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issuer.issue().token}"}


async def _welcome(connection: ClientConnection, credential: Credential) -> None:
    """Send `connect` with the credential's token; check the welcome names its user."""
    await connection.send(json.dumps({"type": "connect", "token": credential.token}))
    welcome = await _answer(connection, "welcome")
    if welcome.get("user") != credential.user:
        raise Refused(
            f"welcome names user {welcome.get('user')!r}, the token "
            f"{credential.user!r}: is authentication off?"
        )


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
