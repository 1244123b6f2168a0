"""GET /metrics: every metric of the process, or of every worker, in Prometheus's text format.

Not in the OpenAPI schema: scrapers read the format, not the schema.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence

import anyio.to_thread
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.responses import Response

from ..outermost import Service
from . import multiprocess
from .http import HttpMetrics, MatchedRoute

PATH = "/metrics"


class _Process:
    """The default registry's metrics, then what `collectors` read from the app's objects."""

    def __init__(self, collectors: Sequence[Collector]) -> None:
        self._collectors = collectors

    def collect(self) -> Iterable[Metric]:
        yield from REGISTRY.collect()
        for collector in self._collectors:
            yield from collector.collect()


def add_metrics(app: Service, *collectors: Collector) -> None:
    """Serve GET /metrics and measure HTTP requests; `collectors` are read at each scrape
    of a single process (in multiprocess mode every figure comes from the shared files).

    Call it before adding any other middleware: the route the router matched is read innermost.
    """
    app.add_middleware(MatchedRoute)
    app.wrap_outermost(HttpMetrics)
    if multiprocess.enabled():
        _route(app, _every_worker)
        return
    source = _Process(collectors)

    async def this_process() -> Response:
        # In the event loop: the collectors read the hub, which is the loop's alone.
        return Response(generate_latest(source), media_type=CONTENT_TYPE_LATEST)

    _route(app, this_process)


def _route(app: Service, endpoint: Callable[[], Awaitable[Response]]) -> None:
    # A FastAPI route, not Starlette's `add_route`: FastAPI's router names only
    # its own routes in the scope, which is where HttpMetrics reads the route.
    app.add_api_route(
        PATH, endpoint, methods=["GET"], response_class=Response, include_in_schema=False
    )


async def _every_worker() -> Response:
    return Response(await anyio.to_thread.run_sync(_read_files), media_type=CONTENT_TYPE_LATEST)


def _read_files() -> bytes:
    """Every process's metrics, from the files of PROMETHEUS_MULTIPROC_DIR (blocking I/O)."""
    multiprocess.forget_dead()
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # unannotated upstream
    return generate_latest(registry)
