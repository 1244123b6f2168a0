"""One WebSocket connection after its handshake: `connect`, then commands, until it closes.

A session reads frames and runs each command to its end before reading the
next, so a client's replies come in the order of its commands. Everything
it sends goes through the hub (`Hub.send_to`), after whatever the hub
delivered to this client before. Whatever ends the connection (the peer
leaving, a close the session or the hub asks for, shutdown, cancellation),
the session leaves the hub once and then sends the close frame.

It runs in the server's own task for the connection, with no reader task
beside it (a task and its frames per idle connection are memory the
capacity benchmark counts): a close asked for elsewhere (the hub closing a
slow client, a timer, shutdown) interrupts the read by cancelling that task,
which the session tells apart from a cancellation of its own (`uncancel`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastapi import WebSocket, status

from ..auth import permissions
from ..auth.tokens import Authenticator, Identity, InvalidToken
from ..broadcast.backend import UNAVAILABLE, BroadcastUnavailable
from ..broadcast.channels import channel_problem
from ..broadcast.client import Client
from ..broadcast.envelope import Position
from ..broadcast.hub import Hub, HubStopped, Subscribed
from ..settings import Settings
from . import protocol
from .limits import TokenBucket
from .protocol import BadFrame, Command, CommandId
from .transport import close

logger = logging.getLogger(__name__)


class Session:
    """The state of one connection: who it is, its subscriptions (on the hub's
    Client), its rate bucket and its timers."""

    def __init__(
        self,
        websocket: WebSocket,
        client: Client,
        hub: Hub,
        authenticator: Authenticator,
        settings: Settings,
    ) -> None:
        self._websocket = websocket
        self._client = client
        self._hub = hub
        self._authenticator = authenticator
        self._settings = settings
        self._identity: Identity | None = None  # None until `connect` succeeds
        self._bucket = TokenBucket(settings.ws_rate, settings.ws_burst)
        self._bad_frames = 0
        self._rate_limited = 0
        self._timer: asyncio.TimerHandle | None = None
        # The task serving the connection while it may be interrupted, else None.
        self._reading: asyncio.Task[object] | None = None
        self._interrupted = False

    async def run(self) -> None:
        """Accept, serve until a close is asked for or the peer leaves, then close.

        The client leaves the hub before this returns, whatever happens.
        """
        client = self._client
        client.on_close = self._interrupt
        try:
            await self._websocket.accept()
            self._close_after(
                self._settings.ws_connect_timeout,
                f"no connect within {self._settings.ws_connect_timeout:g}s",
            )
            await self._serve()
        finally:
            if self._timer is not None:
                self._timer.cancel()
            await client.stop_writing()
            await self._hub.disconnect(client)
        closing = client.close_requested
        if closing is not None:
            code, reason = closing
            if self._hub.metrics is not None:
                self._hub.metrics.closed(code)
            logger.debug(
                "closing client %s with %d: %s",
                client.id,
                code,
                reason,
                extra={"client_id": client.id},
            )
            await close(self._websocket, code, reason, self._settings.ws_send_timeout)

    async def _serve(self) -> None:
        """Read commands until the peer leaves or a close is asked for."""
        task = asyncio.current_task()
        if task is None or self._client.closing:
            return
        self._reading = task
        try:
            await self._read()
        except asyncio.CancelledError:
            # Ours (see `_interrupt`) ends the reading; anyone else's goes on up.
            if not self._interrupted or task.uncancel() > 0:
                raise
        finally:
            self._reading = None

    def _interrupt(self, close: object) -> None:
        """A close was asked for: stop reading, unless this is the reader asking."""
        task = self._reading
        if task is not None and task is not asyncio.current_task():
            self._interrupted = True
            task.cancel()

    async def _read(self) -> None:
        """Read and run commands; the one boundary of this task logs, closes, never vanishes."""
        limit = self._settings.ws_max_message_size
        try:
            while True:
                message = await self._websocket.receive()
                if message["type"] == "websocket.disconnect":
                    self._client.disconnected()
                    return
                text: str | None = message.get("text")
                if text is None:
                    too_big = len(message.get("bytes") or b"") > limit
                else:
                    too_big = utf8_longer_than(text, limit)
                # uvicorn's ws_max_size is 16 MiB unless set: enforce the bound here too.
                if too_big:
                    self._client.close(
                        status.WS_1009_MESSAGE_TOO_BIG, f"message larger than {limit} bytes"
                    )
                    return
                if not await self._handle(text):
                    return
        except Exception:
            logger.exception(
                "serving WebSocket client %s failed",
                self._client.id,
                extra={"client_id": self._client.id},
            )
            self._client.close(status.WS_1011_INTERNAL_ERROR, "internal error")

    async def _handle(self, text: str | None) -> bool:
        """Parse and run one frame (None: a binary one); False once the session must end."""
        try:
            if text is None:
                raise BadFrame("binary frames are not accepted: send JSON text")
            command: Command | BadFrame = protocol.parse(text)
        except BadFrame as exc:
            command = exc
        if self._identity is not None and not self._bucket.take():
            self._rate_limited += 1
            if self._rate_limited >= self._settings.ws_max_bad_frames:
                self._client.close(protocol.CLOSE_TOO_MANY_REQUESTS, "rate limit exceeded")
                return False
            reason = f"more than {self._settings.ws_rate:g} commands per second"
            self._send(protocol.error(protocol.RATE_LIMITED, reason, protocol.command_id(command)))
            return True
        self._rate_limited = 0
        if isinstance(command, protocol.Connect):
            if self._identity is None:
                return await self._connect(command)
            command = BadFrame("already connected")
        elif self._identity is None and not isinstance(command, BadFrame):
            command = BadFrame("send connect first", command.id)
        if isinstance(command, BadFrame):
            self._bad_frames += 1
            if self._hub.metrics is not None:
                self._hub.metrics.bad_frame()
            if self._bad_frames >= self._settings.ws_max_bad_frames:
                self._client.close(
                    protocol.CLOSE_POLICY_VIOLATION, f"{self._bad_frames} bad frames"
                )
                return False
            self._send(protocol.error(protocol.BAD_FRAME, command.reason, command.id))
            return True
        self._bad_frames = 0
        match command:
            case protocol.Subscribe(command_id, channel, since):
                return await self._subscribe(command_id, channel, since)
            case protocol.Unsubscribe(command_id, channel):
                await self._unsubscribe(command_id, channel)
            case protocol.Publish(command_id, channel, data_json):
                await self._publish(command_id, channel, data_json)
            case protocol.Refresh(command_id, token):
                await self._refresh(command_id, token)
            case protocol.Ping(command_id):
                self._send(protocol.reply(command_id))
        return True

    async def _connect(self, command: protocol.Connect) -> bool:
        try:
            identity = await self._authenticator.authenticate(command.token)
        except InvalidToken as exc:
            self._client.close(protocol.CLOSE_UNAUTHORIZED, f"unauthorized: {exc}")
            return False
        self._become(identity)
        self._send(
            protocol.welcome(
                self._client.id,
                identity.user,
                identity.expires_at,
                self._hub.origin,
                self._settings.ws_max_message_size,
                self._settings.ws_max_subscriptions,
                self._settings.ws_rate,
                self._settings.ws_burst,
            )
        )
        return True

    async def _subscribe(self, command_id: CommandId, channel: str, since: Position | None) -> bool:
        if not self._channel_checked(command_id, channel):
            return True
        if channel in self._client.channels:
            self._refuse(command_id, protocol.ALREADY_SUBSCRIBED, f"already subscribed: {channel}")
            return True
        if len(self._client.channels) >= self._settings.ws_max_subscriptions:
            reason = f"at most {self._settings.ws_max_subscriptions} subscriptions per connection"
            self._refuse(command_id, protocol.TOO_MANY_SUBSCRIPTIONS, reason)
            return True
        if not await self._may("subscribe", channel):
            self._refuse(command_id, protocol.FORBIDDEN, f"may not subscribe to {channel}")
            return True

        def answer(outcome: Subscribed) -> str:
            # Sent before any message of the channel, the recovered ones first among them.
            fields: dict[str, Any] = {"channel": channel, **outcome.position._asdict()}
            if outcome.recovered is not None:
                fields["recovered"] = outcome.recovered
            return protocol.reply(command_id, **fields)

        try:
            await self._hub.subscribe(self._client, channel, since, answer)
        except HubStopped:
            self._client.close(status.WS_1012_SERVICE_RESTART, "server shutting down")
            return False
        except BroadcastUnavailable as exc:
            self._unavailable(command_id, exc)
            return True
        return True

    async def _unsubscribe(self, command_id: CommandId, channel: str) -> None:
        if not self._channel_checked(command_id, channel):
            return
        # Idempotent: a channel it was not subscribed to is already left.
        await self._hub.unsubscribe(self._client, channel)
        self._send(protocol.reply(command_id, channel=channel))

    async def _publish(self, command_id: CommandId, channel: str, data_json: str) -> None:
        if not self._channel_checked(command_id, channel):
            return
        if not await self._may("publish", channel):
            self._refuse(command_id, protocol.FORBIDDEN, f"may not publish to {channel}")
            return
        try:
            position = await self._hub.publish(
                channel, data_json, sender=self._client.id, via="websocket"
            )
        except BroadcastUnavailable as exc:
            self._unavailable(command_id, exc)
            return
        self._send(
            protocol.reply(
                command_id, channel=channel, offset=position.offset, epoch=position.epoch
            )
        )

    async def _refresh(self, command_id: CommandId, token: str) -> None:
        try:
            identity = await self._authenticator.authenticate(token)
        except InvalidToken as exc:
            self._refuse(command_id, protocol.UNAUTHORIZED, f"invalid token: {exc}")
            return
        if self._identity is None or identity.user != self._identity.user:
            self._refuse(command_id, protocol.FORBIDDEN, "a refreshed token must keep its sub")
            return
        self._become(identity)
        self._send(protocol.reply(command_id, expires_at=identity.expires_at))

    def _become(self, identity: Identity) -> None:
        """Take `identity` on; its token's expiry closes the connection with 4001."""
        self._identity = identity
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if identity.expires_at is not None:
            left = identity.expires_at + self._settings.auth_leeway - time.time()
            self._close_after(max(0.0, left), "token expired")

    def _close_after(self, seconds: float, reason: str) -> None:
        """Close with 4001 after `seconds`, unless `_become` replaces the timer first."""
        self._timer = asyncio.get_running_loop().call_later(
            seconds, self._client.close, protocol.CLOSE_UNAUTHORIZED, reason
        )

    async def _may(self, action: permissions.Action, channel: str) -> bool:
        if self._identity is None:  # commands run only after connect
            return False
        # Looked up at call time, so a team's replacement of `can` is the one used.
        return await permissions.can(self._identity, action, channel)

    def _channel_checked(self, command_id: CommandId, channel: str) -> bool:
        problem = channel_problem(channel)
        if problem is not None:
            self._refuse(command_id, protocol.BAD_CHANNEL, problem)
            return False
        return True

    def _unavailable(self, command_id: CommandId, exc: BroadcastUnavailable) -> None:
        logger.debug(
            "client %s: broadcast unavailable: %s",
            self._client.id,
            exc,
            extra={"client_id": self._client.id},
        )
        self._refuse(command_id, protocol.UNAVAILABLE, UNAVAILABLE)

    def _refuse(self, command_id: CommandId, code: str, reason: str) -> None:
        self._send(protocol.error(code, reason, command_id))

    def _send(self, frame: str) -> None:
        self._hub.send_to(self._client, frame)


def utf8_longer_than(text: str, limit: int) -> bool:
    """Whether `text` takes more than `limit` bytes as UTF-8; encodes only when in doubt."""
    if len(text) > limit:
        return True  # every character takes at least one byte
    if len(text) * 4 <= limit:
        return False  # and at most four
    return len(text.encode()) > limit
