"""WS /ws: the realtime endpoint. The route checks the handshake and hands over to a session.

One connection carries any number of channels; `realtime/protocol.py` and
the README's "WebSocket protocol" section describe its frames and close codes.
Refused handshakes: a disallowed `Origin` gets HTTP 403, a full process
(`WS_MAX_CONNECTIONS`) HTTP 503.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, WebSocket, status
from fastapi.responses import PlainTextResponse

from ..broadcast.hub import HubFull, HubStopped
from ..deps import AuthenticatorDep, HubDep, SettingsDep
from ..realtime.session import Session
from ..realtime.transport import close, fan_out_send, server_transport
from .origins import origin_allowed

logger = logging.getLogger(__name__)

router = APIRouter(tags=["broadcast"])


@router.websocket("/ws")
async def realtime_socket(
    websocket: WebSocket, hub: HubDep, authenticator: AuthenticatorDep, settings: SettingsDep
) -> None:
    """Serve one connection until it leaves or is closed."""
    origin = websocket.headers.get("origin")
    if not origin_allowed(origin, websocket.headers.get("host"), settings.ws_allowed_origins):
        logger.info("refused WebSocket from origin %r", origin)
        # Closing before accepting refuses the handshake: the server answers 403.
        await websocket.close(status.WS_1008_POLICY_VIOLATION)
        return
    transport = server_transport(websocket)
    try:
        client = hub.connect(
            fan_out_send(websocket), gone=transport.is_closing if transport is not None else None
        )
    except HubFull as exc:
        logger.warning("refused WebSocket: %s (WS_MAX_CONNECTIONS)", exc)
        await refuse(websocket, status.HTTP_503_SERVICE_UNAVAILABLE, "server full: try again later")
        return
    except HubStopped:
        await websocket.accept()
        code, reason = status.WS_1012_SERVICE_RESTART, "server shutting down"
        await close(websocket, code, reason, settings.ws_send_timeout)
        return
    await Session(websocket, client, hub, authenticator, settings).run()


async def refuse(websocket: WebSocket, status_code: int, detail: str) -> None:
    """Refuse the handshake with an HTTP response (the ASGI WebSocket denial
    response extension), or with 403 where the server lacks it."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(PlainTextResponse(detail, status_code=status_code))
    else:
        await websocket.close(status.WS_1008_POLICY_VIOLATION)
