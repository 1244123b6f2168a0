"""Job metrics: attempts started, their outcomes, those running, and how long they take.

Every series is labelled `function`, the job function's name (a bounded set).
Durations are in seconds. The metrics live in prometheus_client's default
registry: the web service's /metrics shows the jobs it runs in process, and a
queue worker serves its own (WORKER_METRICS_PORT).

- `<package>_jobs_started_total`: attempts started (a retried job counts once per attempt).
- `<package>_jobs_succeeded_total`: attempts that succeeded.
- `<package>_jobs_retried_total`: attempts that failed and will run again.
- `<package>_jobs_failed_total`: jobs failed for good, no attempts left.
- `<package>_jobs_running`: attempts running now.
- `<package>_job_duration_seconds`: how long each attempt ran, whatever its outcome.

Once every attempt has ended, started = succeeded + retried + failed, but
for a worker killed mid-job: the worker that takes its job back counts the
lost attempt as retried or failed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Literal

from prometheus_client import Counter, Gauge, Histogram

# The names' prefix: this package's name.
NAMESPACE = (__package__ or "").partition(".")[0]

# From a few milliseconds (a quick send) to JOB_TIMEOUT's default of five minutes and past it.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

Outcome = Literal["succeeded", "retried", "failed"]

STARTED = Counter("jobs_started", "Job attempts started.", ["function"], namespace=NAMESPACE)
SUCCEEDED = Counter(
    "jobs_succeeded", "Job attempts that succeeded.", ["function"], namespace=NAMESPACE
)
RETRIED = Counter(
    "jobs_retried",
    "Job attempts that failed and will run again.",
    ["function"],
    namespace=NAMESPACE,
)
FAILED = Counter(
    "jobs_failed", "Jobs failed with no attempts left.", ["function"], namespace=NAMESPACE
)
# Under prometheus_client's multiprocess mode, the sum over the live processes.
RUNNING = Gauge(
    "jobs_running",
    "Job attempts running now.",
    ["function"],
    namespace=NAMESPACE,
    multiprocess_mode="livesum",
)
DURATION = Histogram(
    "job_duration_seconds",
    "How long each job attempt ran, in seconds.",
    ["function"],
    namespace=NAMESPACE,
    buckets=DURATION_BUCKETS,
)

_OUTCOMES: dict[Outcome, Counter] = {
    "succeeded": SUCCEEDED,
    "retried": RETRIED,
    "failed": FAILED,
}


@contextlib.contextmanager
def attempt(function: str) -> Iterator[None]:
    """Count an attempt of `function` started, and running while the block runs; its
    duration is observed however the block ends (an exception passes through)."""
    STARTED.labels(function).inc()
    running = RUNNING.labels(function)
    running.inc()
    began = time.perf_counter()
    try:
        yield
    finally:
        running.dec()
        DURATION.labels(function).observe(time.perf_counter() - began)


def ended(function: str, outcome: Outcome) -> None:
    """Count an attempt of `function` ended with `outcome`."""
    _OUTCOMES[outcome].labels(function).inc()
