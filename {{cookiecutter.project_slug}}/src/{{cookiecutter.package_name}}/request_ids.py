"""A request id for every request and handshake: on each of its log lines and its response.

The id is the request's `X-Request-ID` header when that is one header of 1 to
128 characters from `A-Z a-z 0-9 . _ : -` (what a proxy or a caller that
traces requests sends), else a new random one; anything else a client sends
there is dropped, never echoed or logged. The response carries it back in
`X-Request-ID`, errors included; so does a WebSocket's handshake response
(101, or a refusal the app sends). A WebSocket's session and the tasks it
starts log with its handshake's id.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .handshake import SERVER_SEND

HEADER = "X-Request-ID"
_HEADER = HEADER.lower().encode()
_VALID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
# Messages that carry a response's headers: the HTTP response, a WebSocket's
# accept, and the HTTP response refusing a WebSocket (the denial extension).
_STARTS = frozenset({"http.response.start", "websocket.accept", "websocket.http.response.start"})

current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
"""The id of the request this code runs for; None outside any request (startup, listeners)."""


def request_id(scope: Scope) -> str:
    """The id for the request `scope` describes: its valid `X-Request-ID`, or a new one."""
    given: list[bytes] = [value for key, value in scope["headers"] if key == _HEADER]
    if len(given) == 1 and _VALID.fullmatch(given[0]):
        return given[0].decode("ascii")
    # 128 random bits as 32 hex digits: uuid4's randomness at a seventh of its cost
    # (every request pays it: GET /health is what load balancers call most).
    return os.urandom(16).hex()


class RequestIds:
    """ASGI middleware: sets `current_request_id` for each request and handshake, and
    adds `X-Request-ID` to its response. Add it last, so that it is outermost."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        identifier = request_id(scope)
        # Not reset after: the server's own lines about this request (the
        # access line, a 500's traceback) are written after the app returns,
        # in the same task, and each request has a task of its own.
        current_request_id.set(identifier)
        header = (_HEADER, identifier.encode("ascii"))
        if scope["type"] == "websocket":
            # The fan-out writes frames with the server's own send, past this one.
            scope.setdefault(SERVER_SEND, send)

        async def send_with_id(message: Message) -> None:
            if message["type"] in _STARTS:
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        await self.app(scope, receive, send_with_id)
