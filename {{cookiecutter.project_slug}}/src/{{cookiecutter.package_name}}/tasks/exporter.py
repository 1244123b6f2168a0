"""The worker's Prometheus exporter: its metrics over HTTP, on HOST:WORKER_METRICS_PORT.

A worker is a process of its own that serves no HTTP, so the web service's
/metrics cannot show its jobs: each worker serves its own, with
prometheus_client's server (a thread), for Prometheus to scrape at /metrics.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from prometheus_client import start_http_server

from ..settings import Settings

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def exporting(settings: Settings) -> Iterator[int | None]:
    """Serve this process's metrics while the block runs; yields the port, or None when
    off (METRICS_ENABLED=false or WORKER_METRICS_PORT=0). Exits the process
    (SystemExit) with one line naming WORKER_METRICS_PORT when it cannot listen."""
    host, port = settings.host, settings.worker_metrics_port
    if not settings.metrics_enabled or port == 0:
        yield None
        return
    try:
        server, thread = start_http_server(port, addr=host)
    except OSError as exc:  # in use, or HOST is no address of this machine
        reason = exc.strerror or exc
        message = f"error: WORKER_METRICS_PORT: cannot listen on {host}:{port} ({reason})"
        raise SystemExit(message) from None
    logger.info("worker metrics on http://%s:%d/metrics", host, port)
    try:
        yield port
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
