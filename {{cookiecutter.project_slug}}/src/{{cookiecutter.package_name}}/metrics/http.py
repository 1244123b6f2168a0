"""HTTP requests: how many, by route and status, and how long each took.

WebSocket connections are not requests here: one open for an hour would
swamp every latency figure (the WebSocket metrics count them).
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import PREFIX

# Labels stay few whatever clients send: a path no route serves, or a method
# no route could declare, is counted under one value.
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"

REQUESTS = Counter(
    f"{PREFIX}_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
DURATION = Histogram(
    f"{PREFIX}_http_request_duration_seconds",
    "Seconds from a request's arrival to the end of its answer, by method and route template.",
    ["method", "route"],
)


class HttpMetrics:
    """ASGI middleware: counts and times every HTTP request; passes WebSockets through untouched.

    The route is the matched route's template (`/channels/{channel}/history`),
    which the router writes in the scope, so this must sit inside any middleware
    that copies the scope. A request that raises counts as status 500.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            method: str = scope["method"]
            if method not in METHODS:
                method = OTHER_METHOD
            # FastAPI's router leaves the route it matched in the scope (its own
            # routes only: a Starlette `add_route` or `mount` counts as unmatched).
            template = getattr(scope.get("route"), "path", None)
            if not isinstance(template, str):
                template = UNMATCHED
            REQUESTS.labels(method, template, str(status)).inc()
            DURATION.labels(method, template).observe(time.perf_counter() - started)
