"""Refusing a WebSocket handshake with an HTTP status, and a 404 for paths no route serves.

A refused handshake is an HTTP response (the ASGI WebSocket denial response
extension, which uvicorn and Starlette's TestClient support), so that a
client and an operator can tell "no such endpoint" (404) from "origin
refused" (403) from "server full" (503). A server without the extension
gets a close before accepting, which it answers with a bare 403.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import WebSocket, status
from fastapi.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

# Where an outer middleware may leave the server's own `send` in a WebSocket's
# scope (hosts.py does, and api/ws.py in WebSocket bakes), for the uvicorn workaround below.
SERVER_SEND = "realtime.server_send"


async def refuse(websocket: WebSocket, status_code: int, detail: str) -> None:
    """Answer the handshake with `status_code` and `detail` as plain text."""
    if "websocket.http.response" not in websocket.scope.get("extensions", {}):
        await websocket.close(status.WS_1008_POLICY_VIOLATION)
        return
    await websocket.send_denial_response(PlainTextResponse(detail, status_code=status_code))
    # uvicorn 0.54 marks the handshake complete after a denial it sent with
    # wsproto, not with websockets-sansio, and then logs "ASGI callable
    # returned without completing handshake." at ERROR for every refusal: an
    # alert per 404 or 503 (https://github.com/Kludex/uvicorn/pull/3138, open).
    # This sets what that fix sets; it changes nothing once uvicorn does.
    protocol: Any = getattr(websocket.scope.get(SERVER_SEND), "__self__", None)
    if getattr(protocol, "close_sent", False) and hasattr(protocol, "handshake_complete"):
        protocol.handshake_complete = True


def not_found(http_not_found: ASGIApp) -> ASGIApp:
    """The router's default: HTTP 404 for a WebSocket handshake to a path no route serves
    (Starlette's own default closes it, a bare 403); `http_not_found` for the rest."""

    async def default(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await http_not_found(scope, receive, send)
            return
        logger.info("refused WebSocket to %r: no such endpoint", scope["path"])
        await refuse(WebSocket(scope, receive, send), status.HTTP_404_NOT_FOUND, "no such endpoint")

    return default
