"""The jobs a worker runs: `async def job(ctx, **kwargs)`, each safe to run twice.

Delivery is at least once: a job whose worker dies mid-run runs again, so a
job checks its idempotency key before its side effect and records it after
(tasks/notifications.py shows how). Add a job by writing it here and listing it
in FUNCTIONS; enqueue it by name (`tasks.queue.enqueue(queue, settings,
"my_job", owner=..., arg=...)`). Its keyword arguments and its return value
travel as JSON.
"""

from __future__ import annotations

import logging

from .context import JobContext, JobFunction
{%- if cookiecutter.use_background_tasks %}
from .notifications import send_notification
{%- endif %}

logger = logging.getLogger(__name__)


async def report_queue(ctx: JobContext) -> dict[str, int]:
    """The periodic example (QUEUE_REPORT_CRON): log how many jobs wait and run.

    It runs once per period however many workers there are: each worker
    offers the next run under one key, and Redis keeps the first.
    """
    queue = ctx["worker"].queue
    counts = {"queued": await queue.count("queued"), "running": await queue.count("active")}
    logger.info(
        "queue report for %d: %d queued, %d running",
        ctx["job"].scheduled,
        counts["queued"],
        counts["running"],
    )
    return counts


# Every job a worker can run, by its function's name.
FUNCTIONS: list[JobFunction] = [
{%- if cookiecutter.use_background_tasks %}
    send_notification,
{%- endif %}
    report_queue,
]
