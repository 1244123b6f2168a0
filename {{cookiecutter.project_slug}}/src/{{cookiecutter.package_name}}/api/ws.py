"""WS /ws: the realtime endpoint. It checks the handshake and hands over to a session.

One connection carries any number of channels; `realtime/protocol.py` and
the README's "WebSocket protocol" section describe its frames and close codes.
Refused handshakes: a disallowed `Origin` gets HTTP 403, a full process
(`WS_MAX_CONNECTIONS`) HTTP 503.

The endpoint is an ASGI middleware (`RealtimeEndpoint`) that answers `/ws`
before the framework's own middleware and router, which see every other
request as usual. Each layer between the server and an endpoint (Starlette's
exception middleware and router, FastAPI's exit stack and dependency
solving) keeps a coroutine frame and its locals alive for as long as a
WebSocket stays open: about 12 KiB per idle connection, a third of the
service's memory per connection, and a good part of a handshake's CPU
(measured with tracemalloc and the benchmarks' capacity scenario).
"""

from __future__ import annotations

import logging

from fastapi import WebSocket, status
from starlette.types import ASGIApp, Receive, Scope, Send

from ..auth.tokens import Authenticator
from ..broadcast.hub import Hub, HubFull, HubStopped
from ..handshake import SERVER_SEND, refuse
from ..realtime.session import Session
from ..realtime.transport import close, fan_out_send, frame_writer, server_transport
from ..settings import Settings
from .origins import origin_allowed

logger = logging.getLogger(__name__)

PATH = "/ws"


class RealtimeEndpoint:
    """ASGI middleware: serves `WS /ws` itself; passes everything else on to `app`.

    Add it with `app.add_middleware`. Handlers of the app (exception
    handlers, dependencies) do not apply to `/ws`: the session is its own
    error boundary.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        # For every handshake: the fan-out and handshake.refuse need the server's own
        # (request_ids.py, outermost, leaves it in the scope first).
        scope.setdefault(SERVER_SEND, send)
        if route_path(scope) == PATH:
            await realtime_socket(WebSocket(scope, receive, send))
        else:
            await self.app(scope, receive, send)


def route_path(scope: Scope) -> str:
    """The request's path below the app's mount point (ASGI `root_path`), as routers match it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path.removeprefix(root) if root and path.startswith(root + "/") else path


async def realtime_socket(websocket: WebSocket) -> None:
    """Serve one connection until it leaves or is closed."""
    state = websocket.app.state
    hub: Hub = state.hub
    authenticator: Authenticator = state.authenticator
    settings: Settings = state.settings
    origin = websocket.headers.get("origin")
    if not origin_allowed(origin, websocket.headers.get("host"), settings.ws_allowed_origins):
        logger.info(
            "refused WebSocket from origin %r with Host %r: neither the service's own"
            " nor in WS_ALLOWED_ORIGINS",
            origin,
            websocket.headers.get("host"),
        )
        if hub.metrics is not None:
            hub.metrics.refused("origin")
        await refuse(websocket, status.HTTP_403_FORBIDDEN, "origin not allowed")
        return
    transport = server_transport(websocket)
    try:
        client = hub.connect(
            fan_out_send(websocket),
            gone=transport.is_closing if transport is not None else None,
            write_frame=frame_writer(websocket),
        )
    except HubFull as exc:
        logger.warning("refused WebSocket: %s (WS_MAX_CONNECTIONS)", exc)
        if hub.metrics is not None:
            hub.metrics.refused("full")
        await refuse(websocket, status.HTTP_503_SERVICE_UNAVAILABLE, "server full: try again later")
        return
    except HubStopped:
        await websocket.accept()
        code, reason = status.WS_1012_SERVICE_RESTART, "server shutting down"
        if hub.metrics is not None:
            hub.metrics.closed(code)
        await close(websocket, code, reason, settings.ws_send_timeout)
        return
    await Session(websocket, client, hub, authenticator, settings).run()
