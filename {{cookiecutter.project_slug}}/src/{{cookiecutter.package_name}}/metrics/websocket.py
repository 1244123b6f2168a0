"""WebSocket metrics: what the hub holds (gauges) and what happened to it (counters).

The hub reports events through `HubMetrics` (broadcast/hub.py), only once
`instrument` gave it one; none of them is per frame: a fan-out reports how
many frames it handed out, and one latency, once per channel and event-loop step
(a burst delivered in one step is one fan-out, timed by its oldest message).

The gauges are read from the hub's own state (`Hub.stats`): at each scrape
of a single process, or, in multiprocess mode, every SAMPLE_INTERVAL
seconds by each worker into the shared files, where a scrape of any worker
sums them (the backend's readiness: the least of them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Literal

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette import status

from ..broadcast.envelope import published_at
from ..broadcast.hub import Hub, HubStats, Via
from ..realtime import protocol
from . import PREFIX, multiprocess
from .broadcast import MESSAGES_PUBLISHED

# Seconds between two samples of a worker's gauges in multiprocess mode.
SAMPLE_INTERVAL = 1.0

FRAMES_DELIVERED = Counter(
    f"{PREFIX}_frames_delivered",
    "Message frames the fan-out handed to WebSocket clients (sent or queued for them).",
)
CLOSED = Counter(
    f"{PREFIX}_websocket_closed",
    "WebSocket connections the service closed, by close code and its short name.",
    ["code", "reason"],
)
HANDSHAKES_REFUSED = Counter(
    f"{PREFIX}_websocket_handshakes_refused",
    "WebSocket handshakes refused with an HTTP status, by reason: origin, full.",
    ["reason"],
)
BAD_FRAMES = Counter(
    f"{PREFIX}_websocket_bad_frames",
    "Frames from clients that were no command the service accepts (each got an error).",
)
DELIVERY_LATENCY = Histogram(
    f"{PREFIX}_delivery_latency_seconds",
    "Seconds from a message's publish time (its envelope's ts, in milliseconds) to its"
    " fan-out in this process; one observation per fan-out: per channel and event-loop step,"
    " the oldest message delivered in it.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
REDIS_RECONNECTS = Counter(
    f"{PREFIX}_redis_reconnects",
    "Times the broadcast backend got its subscriptions back after losing Redis.",
)
RECOVERIES = Counter(
    f"{PREFIX}_recoveries",
    "Channels caught up from their history after an outage or a gap, nothing missed.",
)
RESYNCS = Counter(
    f"{PREFIX}_resyncs",
    "Channels whose history could not cover an outage or a gap: their subscribers got resync.",
)

# Close codes by a short name; the label set stays bounded whatever happens.
CLOSE_REASONS: dict[int, str] = {
    status.WS_1009_MESSAGE_TOO_BIG: "too_big",
    status.WS_1011_INTERNAL_ERROR: "internal_error",
    status.WS_1012_SERVICE_RESTART: "shutting_down",
    status.WS_1013_TRY_AGAIN_LATER: "slow",
    protocol.CLOSE_UNAUTHORIZED: "unauthorized",
    protocol.CLOSE_POLICY_VIOLATION: "bad_frames",
    protocol.CLOSE_TOO_MANY_REQUESTS: "rate_limited",
}
REFUSALS = ("origin", "full")
VIAS: tuple[Via, ...] = ("websocket", "http", "job")

_Mode = Literal["livesum", "livemin"]
# (name after the prefix, help, how workers combine in multiprocess mode, reading).
_GAUGES: tuple[tuple[str, str, _Mode, Callable[[Hub, HubStats], float]], ...] = (
    (
        "websocket_connections",
        "WebSocket connections open.",
        "livesum",
        lambda _, stats: stats.clients,
    ),
    (
        "websocket_subscriptions",
        "Subscriptions of open WebSocket connections to channels.",
        "livesum",
        lambda _, stats: sum(stats.channels.values()),
    ),
    (
        "channels",
        "Channels with a subscriber in this process (summed over worker processes).",
        "livesum",
        lambda _, stats: len(stats.channels),
    ),
    (
        "websocket_backlog_messages",
        "Messages queued for WebSocket clients whose sockets push back, summed.",
        "livesum",
        lambda _, stats: stats.backlog,
    ),
    (
        "backend_ready",
        "1 while the broadcast backend can publish and subscribe, else 0 (any worker's 0 wins).",
        "livemin",
        lambda hub, _: float(hub.backend_ready()),
    ),
)


def instrument(hub: Hub) -> list[Collector]:
    """Make `hub` report to the metrics above; the collectors a scrape of this process
    reads (none in multiprocess mode: each worker samples its gauges into the files)."""
    if multiprocess.enabled():
        hub.metrics = PrometheusHubMetrics(_Sampler(hub))
        return []
    hub.metrics = PrometheusHubMetrics()
    return [HubCollector(hub)]


class HubCollector:
    """The hub's gauges, read from its state at each scrape (single process)."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def collect(self) -> Iterable[Metric]:
        hub = self._hub
        stats = hub.stats()
        for name, documentation, _, read in _GAUGES:
            yield GaugeMetricFamily(f"{PREFIX}_{name}", documentation, value=read(hub, stats))


class _Sampler:
    """Writes this worker's gauges into the shared files every SAMPLE_INTERVAL seconds
    while the hub runs (multiprocess mode)."""

    _gauges: list[tuple[Gauge, Callable[[Hub, HubStats], float]]] | None = None

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._timer: asyncio.TimerHandle | None = None
        if _Sampler._gauges is None:  # once per process: the registry refuses a name twice
            _Sampler._gauges = [
                (Gauge(f"{PREFIX}_{name}", documentation, multiprocess_mode=mode), read)
                for name, documentation, mode, read in _GAUGES
            ]

    def start(self) -> None:
        if self._timer is None:
            self._sample()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        multiprocess.forget_this_process()

    def _sample(self) -> None:
        hub = self._hub
        stats = hub.stats()
        for gauge, read in self._gauges or ():
            gauge.set(read(hub, stats))
        self._timer = asyncio.get_running_loop().call_later(SAMPLE_INTERVAL, self._sample)


class PrometheusHubMetrics:
    """A `HubMetrics` that counts on the metrics above; every call is a few increments."""

    def __init__(self, sampler: _Sampler | None = None) -> None:
        self._sampler = sampler
        # Children looked up once: `labels()` takes a lock and a dict lookup per call.
        self._published = {via: MESSAGES_PUBLISHED.labels(via) for via in VIAS}
        for reason in REFUSALS:
            HANDSHAKES_REFUSED.labels(reason)  # present at 0 from the start
        for code, reason in CLOSE_REASONS.items():
            CLOSED.labels(str(code), reason)

    def started(self) -> None:
        if self._sampler is not None:
            self._sampler.start()

    def stopped(self) -> None:
        if self._sampler is not None:
            self._sampler.stop()

    def published(self, via: Via) -> None:
        self._published[via].inc()

    def fanned_out(self, frames: int, message: str) -> None:
        FRAMES_DELIVERED.inc(frames)
        sent = published_at(message)
        if sent is not None:
            # Clocks of other hosts can be ahead of this one's: never below zero.
            DELIVERY_LATENCY.observe(max(0.0, time.time() - sent))

    def closed(self, code: int) -> None:
        CLOSED.labels(str(code), CLOSE_REASONS.get(code, "other")).inc()

    def refused(self, reason: str) -> None:
        HANDSHAKES_REFUSED.labels(reason).inc()

    def bad_frame(self) -> None:
        BAD_FRAMES.inc()

    def resumed(self) -> None:
        REDIS_RECONNECTS.inc()

    def caught_up(self, recovered: int, resynced: int) -> None:
        RECOVERIES.inc(recovered)
        RESYNCS.inc(resynced)
