"""The notification job: `POST /notifications` enqueues it, a worker runs it.

Delivery is at least once: a job whose worker dies mid-run runs again. So
the job checks its idempotency key before the side effect and records it
after, and hands the key to the provider for the moment in between.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import anyio.to_thread

from .context import JobContext

logger = logging.getLogger(__name__)


def send_with_provider(recipient: str, message: str, idempotency_key: str) -> None:
    """Send one notification: replace the log line with your email or SMS provider's call.

    Pass `idempotency_key` on to providers that take one (most HTTP APIs
    do): it is the job's id, the same on every run of the job, so the
    provider drops a second send that the check in `send_notification`
    cannot see (a worker killed after sending, before recording it).

    A plain `def` runs in a worker thread, so a blocking client (smtplib, an
    SMS SDK, requests) cannot stall the other jobs; with an async client,
    make it `async def` and await the client.
    """
    # Quoted (repr): what a client sent never reaches a log line unescaped.
    logger.info("notification for %r: %r (key %s)", recipient, message, idempotency_key)


async def send_notification(ctx: JobContext, *, recipient: str, message: str) -> dict[str, Any]:
    """Send a notification at most once per job, however often the job runs.

    Returns `{"sent": True}`, or `{"sent": False}` when an earlier run of
    this job sent it already (its idempotency key is recorded in Redis past
    the job's last possible run: `Settings.job_idempotency_ttl`). Raises
    whatever the provider raises: the job is then retried (JOB_RETRIES, with
    backoff).
    """
    job, settings, redis = ctx["job"], ctx["settings"], ctx["redis"]
    sent = settings.redis_key("sent", job.key)
    if await redis.exists(sent):
        logger.info("notification job %s: sent by an earlier run, not again", job.key)
        return {"sent": False}
    provider = send_with_provider
    if inspect.iscoroutinefunction(provider):
        await provider(recipient, message, job.key)
    else:
        await anyio.to_thread.run_sync(provider, recipient, message, job.key)
    await redis.set(sent, "1", ex=settings.job_idempotency_ttl)
    return {"sent": True}
