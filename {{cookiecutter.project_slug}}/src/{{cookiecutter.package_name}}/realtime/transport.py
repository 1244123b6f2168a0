"""Workarounds that reach under Starlette into the server's connection (checked: uvicorn 0.34-0.54).

Kept here so that neither the route nor the session meets them:

- `fan_out_send` is the server's own `send` (which `api/ws.py` leaves in the
  scope), for fan-out: inside the app every `send` passes through
  `WebSocket.send`'s state checks, a sixth of a fanned-out frame's cost; the
  hub only sends `websocket.send` messages on an accepted socket, which
  change no state, so it may call the server directly;
- `frame_writer` writes a fan-out's ready-made frame straight to the
  transport of uvicorn's websockets-sansio connection (uvicorn's `--ws auto`
  since 0.35), skipping its framing of the same message for every client;
- `server_transport` finds the asyncio (or uvloop) transport under a WebSocket;
- `abort_connection` resets a connection whose peer stopped reading, and
  `close` falls back on it when a close frame cannot be sent in time.

With a server that shows no transport, each degrades to Starlette's ordinary path.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

from ..broadcast import client
from ..handshake import SERVER_SEND

logger = logging.getLogger(__name__)

# RFC 6455 section 5.5: a close frame's reason is at most 123 bytes of UTF-8.
MAX_CLOSE_REASON = 123


def fan_out_send(websocket: WebSocket) -> client.Send:
    """The `send` the hub should use for `websocket`: the server's own when the scope has it."""
    send: client.Send = websocket.scope.get(SERVER_SEND, websocket.send)
    return send


def frame_writer(websocket: WebSocket) -> client.WriteFrame | None:
    """A `WriteFrame` for `websocket`, or None where the server is not one it knows.

    Known: uvicorn's websockets-sansio protocol (checked: uvicorn 0.54 with
    websockets 17). Its `send` frames each message with the `websockets`
    protocol object and writes it to the transport; a text frame carries no
    state, so writing the same bytes ourselves is equivalent, as long as the
    handshake is done, no close was sent, no extension (compression) was
    negotiated and the transport is not pushing back. When one of those does
    not hold, the writer declines and the ordinary `send` takes the message.
    """
    server_send = websocket.scope.get(SERVER_SEND)
    protocol: Any = getattr(server_send, "__self__", None)
    conn: Any = getattr(protocol, "conn", None)
    transport: Any = getattr(protocol, "transport", None)
    writable: Any = getattr(protocol, "writable", None)
    known = (
        hasattr(protocol, "handshake_complete")
        and hasattr(protocol, "close_sent")
        and isinstance(writable, asyncio.Event)
        and getattr(conn, "state", None) is not None
        and hasattr(conn, "extensions")
        and hasattr(transport, "write")
    )
    if not known:
        return None
    open_state = type(conn.state).OPEN

    def write_frame(frame: bytes) -> bool:
        if (
            not protocol.handshake_complete
            or protocol.close_sent
            or conn.state is not open_state
            or conn.extensions
            or not writable.is_set()
            or transport.is_closing()
        ):
            return False
        transport.write(frame)
        return True

    return write_frame


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
