"""HEAD answered for every GET route: uptime monitors and load balancers probe with HEAD.

FastAPI routes answer only the methods they declare, so `HEAD /health` would
get 405 while `GET /health` gets 200 and the probe would mark the service
down. RFC 9110 section 9.3.2: HEAD is GET without the content; the status
and headers are the same.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """ASGI middleware: serves a HEAD request as the GET it stands for, and sends no body.

    The server keeps its own scope, which still says HEAD (uvicorn then writes
    no body either); the app sees GET. Add it with `app.add_middleware`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_head(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_head)
