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


# Where `MatchedRoute` leaves the route for `HttpMetrics`: a dict in the scope,
# shared by every copy a layer between them makes of it (HeadAsGet makes one).
_MATCHED = f"{PREFIX}.matched_route"


class HttpMetrics:
    """ASGI layer: counts and times every HTTP request; passes WebSockets through untouched.

    Wrap the app's whole stack in it (`Service.wrap_outermost`), so that it sees
    every answer, FastAPI's own 413 and 500 included. The route is the matched
    route's template (`/channels/{channel}/history`), which `MatchedRoute` hands
    out from inside; an answer given before routing (an oversized body, an
    untrusted Host) has none. A request that raises counts as status 500.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Each label set's two series, looked up once: `labels()` costs more than
        # the increment itself, on every request. Bounded as the labels are.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        matched: dict[str, object] = {}
        scope[_MATCHED] = matched

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
            template = getattr(matched.get("route"), "path", None)
            if not isinstance(template, str):
                template = UNMATCHED
            key = (method, template, status)
            series = self._series.get(key)
            if series is None:
                series = (
                    REQUESTS.labels(method, template, str(status)),
                    DURATION.labels(method, template),
                )
                self._series[key] = series
            requests, duration = series
            requests.inc()
            duration.observe(time.perf_counter() - started)


class MatchedRoute:
    """ASGI middleware: hands the route the router matched to `HttpMetrics` outside.

    Add it first (innermost, with `add_middleware`): the router writes the route
    in the scope it is given, which layers further out may not share.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            matched = scope.get(_MATCHED)
            if matched is not None and "route" in scope:
                matched["route"] = scope["route"]
