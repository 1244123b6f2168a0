"""WS /ws/{channel}: join a channel by connecting; every JSON text frame sent is published to it.

Frames out: `welcome` first, then `message` envelopes (the sender's own
included), `error` for a refused frame, `resync` after a backend outage.
Close codes: 1008 bad channel name or too many bad frames, 1009 frame too
large, 1011 internal error, 1012 server shutting down, 1013 too slow or
broadcast unavailable. A disallowed `Origin` is refused with HTTP 403.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect, status
from starlette.types import ASGIApp, Receive, Scope, Send

from ..broadcast.backend import BroadcastUnavailable
from ..broadcast.channels import channel_problem
from ..broadcast.client import Client
from ..broadcast.envelope import InvalidJSON, check_json, error_frame
from ..broadcast.hub import Hub, HubStopped
from ..deps import HubDep, SettingsDep
from ..settings import Settings
from .origins import origin_allowed

logger = logging.getLogger(__name__)

router = APIRouter(tags=["broadcast"])

# RFC 6455: a close frame's reason is at most 123 bytes of UTF-8.
MAX_CLOSE_REASON = 123

# Where DirectSend leaves the server's own `send` in a WebSocket's scope.
SERVER_SEND = "broadcast.server_send"


class DirectSend:
    """ASGI middleware: hands the server's `send` to WebSocket endpoints, for fan-out.

    Inside the app, every `send` passes through Starlette's exception
    wrapper and `WebSocket.send`'s state checks; for a frame fanned out to
    thousands of clients that is a sixth of its cost. The hub only sends
    `websocket.send` messages on an accepted socket, which change no state,
    so it may call the server directly. Add it with `app.add_middleware`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope[SERVER_SEND] = send
        await self.app(scope, receive, send)


@router.websocket("/ws/{channel}")
async def channel_socket(
    websocket: WebSocket, channel: str, hub: HubDep, settings: SettingsDep
) -> None:
    """Serve one client of `channel` until it leaves or is closed."""
    origin = websocket.headers.get("origin")
    if not origin_allowed(origin, websocket.headers.get("host"), settings.ws_allowed_origins):
        logger.info("refused WebSocket from origin %r", origin)
        # Closing before accepting refuses the handshake: the server answers 403.
        await websocket.close(status.WS_1008_POLICY_VIOLATION)
        return
    await websocket.accept()
    # A bad name is refused after accepting, so that the close frame can say
    # why: a browser sees nothing of a refused handshake.
    problem = channel_problem(channel)
    if problem is not None:
        await close(websocket, status.WS_1008_POLICY_VIOLATION, problem, settings.ws_send_timeout)
        return
    transport = server_transport(websocket)
    try:
        client = await hub.join(
            channel,
            websocket.scope.get(SERVER_SEND, websocket.send),
            gone=transport.is_closing if transport is not None else None,
        )
    except HubStopped:
        code, reason = status.WS_1012_SERVICE_RESTART, "server shutting down"
    except BroadcastUnavailable as exc:
        code, reason = status.WS_1013_TRY_AGAIN_LATER, f"broadcast unavailable: {exc}"
    else:
        await serve(websocket, client, hub, settings)
        return
    await close(websocket, code, reason, settings.ws_send_timeout)


def server_transport(websocket: WebSocket) -> Any:
    """The server's transport under `websocket`, or None when the server does not show it.

    uvicorn's `send` is a method of its protocol object, which owns the transport.
    """
    server_send = websocket.scope.get(SERVER_SEND)
    transport = getattr(getattr(server_send, "__self__", None), "transport", None)
    # Duck-typed: uvloop's transports do not derive from asyncio.Transport.
    needed = ("abort", "get_extra_info", "is_closing")
    return transport if all(hasattr(transport, name) for name in needed) else None


def abort_connection(websocket: WebSocket) -> bool:
    """Drop the TCP connection under `websocket` now, discarding unsent data.

    When the app returns, uvicorn closes the transport gracefully, and
    asyncio's graceful close waits for the write buffer to drain: for a peer
    that stopped reading, forever, holding the socket and its kernel buffers.
    Even an abort leaves the kernel waiting to send what it holds; a zero
    linger time makes the close a reset that frees it at once. A server that
    exposes no transport is left to its own timeouts.
    """
    transport = server_transport(websocket)
    if transport is None:
        return False
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    return True


async def serve(websocket: WebSocket, client: Client, hub: Hub, settings: Settings) -> None:
    """Read frames in a task of their own until a close is asked for, then close.

    Whatever ends the connection (the peer leaving, the hub closing a slow
    client, shutdown, cancellation), `finally` unregisters the client once.
    """
    reader = asyncio.create_task(
        read_frames(websocket, client, hub, settings), name=f"websocket reader {client.id}"
    )
    try:
        closing = await client.wait_closing()
    finally:
        reader.cancel()
        await client.stop_writing()
        await asyncio.wait([reader])
        await hub.leave(client)
    if closing is not None:
        code, reason = closing
        logger.debug("closing client %s with %d: %s", client.id, code, reason)
        await close(websocket, code, reason, settings.ws_send_timeout)


async def read_frames(websocket: WebSocket, client: Client, hub: Hub, settings: Settings) -> None:
    """Publish each JSON text frame; answer a bad one with an error frame, too many with 1008."""
    limit = settings.ws_max_message_size
    bad_frames = 0
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                client.disconnected()
                return
            text: str | None = message.get("text")
            if text is None:
                too_big = len(message.get("bytes") or b"") > limit
            else:
                too_big = utf8_longer_than(text, limit)
            # uvicorn's ws_max_size is 16 MiB unless set: enforce the bound here too.
            if too_big:
                client.close(status.WS_1009_MESSAGE_TOO_BIG, f"message larger than {limit} bytes")
                return
            if text is None:
                error, reason = "binary_frame", "binary frames are not accepted: send JSON as text"
            else:
                try:
                    check_json(text)
                except InvalidJSON as exc:
                    error, reason = "invalid_json", str(exc)
                else:
                    await publish(client, hub, text)
                    continue
            # Through the hub: after the echoes of frames this client sent before.
            hub.send_to(client, error_frame(error, reason))
            bad_frames += 1
            if bad_frames >= settings.ws_max_bad_frames:
                client.close(status.WS_1008_POLICY_VIOLATION, f"{bad_frames} bad frames")
                return
    except Exception:  # the one boundary of this task: log, close, never vanish silently
        logger.exception("reading from WebSocket client %s failed", client.id)
        client.close(status.WS_1011_INTERNAL_ERROR, "internal error")


async def publish(client: Client, hub: Hub, text: str) -> None:
    """Publish for `client`; an outage is the server's fault, so it is not a bad frame."""
    try:
        await hub.publish(client.channel, text, sender=client.id)
    except BroadcastUnavailable as exc:
        hub.send_to(client, error_frame("unavailable", f"broadcast unavailable: {exc}"))


def utf8_longer_than(text: str, limit: int) -> bool:
    """Whether `text` takes more than `limit` bytes as UTF-8; encodes only when in doubt."""
    if len(text) > limit:
        return True  # every character takes at least one byte
    if len(text) * 4 <= limit:
        return False  # and at most four
    return len(text.encode()) > limit


async def close(websocket: WebSocket, code: int, reason: str, deadline: float) -> None:
    """Send a close frame within `deadline` seconds; a peer gone or not reading is let go."""
    reason = reason.encode()[:MAX_CLOSE_REASON].decode(errors="ignore")
    try:
        async with asyncio.timeout(deadline):
            await websocket.close(code, reason)
    except TimeoutError:
        aborted = abort_connection(websocket)
        logger.info("close %d not sent in %gs; connection aborted: %s", code, deadline, aborted)
    except (WebSocketDisconnect, OSError, RuntimeError) as exc:
        logger.debug("close %d not sent: %r", code, exc)
