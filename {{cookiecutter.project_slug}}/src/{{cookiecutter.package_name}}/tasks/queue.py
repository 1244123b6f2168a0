"""The durable job queue: SAQ's Redis queue, as the web process and the worker open it.

Jobs live in Redis, not in a process: `enqueue` stores one and returns once
Redis has it, any worker process runs it, and `find` reads its state from
Redis, so every web process answers the same about it, before and after
restarts. Delivery is at least once (README, "Durable jobs"): write jobs so
that a second run has no second effect.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from pydantic import BaseModel
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from saq import Job, Status
from saq.queue.redis import RedisQueue

from ..readiness import Readiness
from ..redis_client import redis_check
from ..settings import Settings
from .engine import Queue

logger = logging.getLogger(__name__)

# The queue's name under REDIS_PREFIX: SAQ's keys are `saq:<name>:...`, its
# jobs `saq:job:<name>:<id>`.
QUEUE = "jobs"
# Seconds a worker's wait for the next job blocks in Redis (BLMOVE) before it
# asks again: short, since a stopping worker waits for it; the worker's
# socket timeout is this much longer than REDIS_TIMEOUT.
DEQUEUE_WAIT = 1

# What `new_job_id` makes: the ids `find` looks up.
JOB_ID = re.compile(r"[0-9a-f]{32}")

JobState = Literal["queued", "running", "succeeded", "failed"]

# SAQ's statuses as this service names them (aborted: stopped by SAQ's own
# abort, which this service does not use, failed all the same).
STATES: dict[Status, JobState] = {
    Status.NEW: "queued",
    Status.QUEUED: "queued",
    Status.ACTIVE: "running",
    Status.ABORTING: "running",
    Status.COMPLETE: "succeeded",
    Status.FAILED: "failed",
    Status.ABORTED: "failed",
}


class JobView(BaseModel):
    """What `GET /jobs/{id}` answers: the state, and the outcome once there is one."""

    job_id: str
    # The job's function, e.g. "send_notification".
    name: str
    state: JobState
    # Attempts started so far, this one included (1 on the first run).
    attempts: int
    # The function's return value, once succeeded.
    result: Any = None
    # The last attempt's error (its traceback's last line), once one failed.
    error: str | None = None


def create_queue(settings: Settings, *, worker: bool = False) -> Queue:
    """The queue at REDIS_URL, not connected yet; raises ValueError when REDIS_URL is unset.

    Commands fail within REDIS_TIMEOUT seconds, never hang on a dead
    connection; a `worker`'s may also block DEQUEUE_WAIT seconds waiting for a job.
    """
    if settings.redis_url is None:
        raise ValueError("REDIS_URL is not set: the job queue lives in Redis")
    client: Redis = Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout + (DEQUEUE_WAIT if worker else 0),
        socket_connect_timeout=settings.redis_timeout,
        # One immediate retry, on a connection error only: a pooled
        # connection that a Redis restart closed while it sat unused.
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )
    return Queue(client, name=settings.redis_key(QUEUE))


@asynccontextmanager
async def managed_queue(
    settings: Settings, readiness: Readiness
) -> AsyncIterator[RedisQueue | None]:
    """The web process's queue, checked by `/ready` as "queue" while open; closed on exit.

    Yields None, and says so in the log, when REDIS_URL is not set: the job
    routes are then not served (see `main.create_app`).
    """
    if settings.redis_url is None:
        logger.info("REDIS_URL is not set: no job queue, and no routes that need one")
        yield None
        return
    queue = create_queue(settings)
    await queue.connect()
    readiness.add("queue", redis_check(queue.redis, timeout=settings.redis_timeout))
    try:
        yield queue
    finally:
        readiness.remove("queue")
        await queue.disconnect()


def new_job_id() -> str:
    """A job id no one can guess (128 random bits, hex): it is all `GET /jobs/{id}` needs."""
    return uuid.uuid4().hex


def job_options(settings: Settings) -> dict[str, Any]:
    """SAQ's per-job settings, from ours: timeouts, retries, backoff, retention.

    SAQ counts attempts, not retries (`retries=3` runs a job at most three
    times); JOB_RETRIES counts the runs after the first.
    """
    return {
        "timeout": settings.job_timeout,
        "heartbeat": settings.job_heartbeat_timeout,
        "retries": settings.job_retries + 1,
        "retry_delay": settings.job_retry_delay,
        "retry_backoff": settings.job_retry_max_delay,
        "ttl": settings.job_result_ttl,
    }


async def enqueue(
    queue: RedisQueue,
    settings: Settings,
    function: str,
    *,
    owner: str | None,
    idempotency_key: str | None = None,
    **kwargs: Any,
) -> str:
    """Store a job running `function(**kwargs)` in Redis; its id, once Redis has it.

    `owner` (a token's `sub`, None while authentication is off) is the only
    caller `find` shows the job to. With an `idempotency_key`, the first job
    the owner stored under that key for this function is answered instead of
    a new one, while it is kept (JOB_RESULT_TTL after it finished): a client
    that retries a request whose answer it missed queues the job once. The
    job's keyword arguments travel as JSON, whatever their names. Raises
    IdempotencyKeyReused for a key already used with other arguments, and
    redis-py's RedisError when Redis does not confirm the job (it may be stored).
    """
    job_id = new_job_id()
    if idempotency_key is not None:
        earlier = await _claim(queue, settings, job_id, (owner, function, idempotency_key), kwargs)
        if earlier is not None:
            return earlier
    job = Job(
        function=function, kwargs=kwargs, key=job_id, meta={"owner": owner}, **job_options(settings)
    )
    if await queue.enqueue(job) is None and idempotency_key is None:
        # SAQ's answer for a key still queued or running: 128 random bits never repeat.
        raise RuntimeError(f"job id {job_id} is already queued")
    return job_id


class IdempotencyKeyReused(ValueError):
    """An Idempotency-Key sent again with another request.

    (draft-ietf-httpapi-idempotency-key-header; POST /notifications answers 409.)
    """


async def _claim(
    queue: RedisQueue,
    settings: Settings,
    job_id: str,
    name: tuple[str | None, str, str],
    kwargs: dict[str, Any],
) -> str | None:
    # The key maps to "<job id> <fingerprint of the request>" for as long as its
    # job may live; a new random id each time the key is claimed anew, so that a
    # job's own idempotency records never meet an earlier job's.
    owner, function, key = name
    named = "\0".join((owner or "", function, key)).encode()
    record = settings.redis_key("idempotency", hashlib.sha256(named).hexdigest())
    request = json.dumps(kwargs, sort_keys=True, default=str)
    fingerprint = hashlib.sha256(request.encode()).hexdigest()
    claim = f"{job_id} {fingerprint}"
    ttl = settings.job_idempotency_ttl
    if await queue.redis.set(record, claim, nx=True, ex=ttl):
        return None
    stored = await queue.redis.get(record)
    text = stored.decode() if isinstance(stored, bytes) else stored or ""
    earlier, _, earlier_fingerprint = text.partition(" ")
    if earlier_fingerprint != fingerprint:
        raise IdempotencyKeyReused(f"Idempotency-Key {key!r} was used with another request")
    if await queue.job(earlier) is not None:
        return earlier
    await queue.redis.set(record, claim, ex=ttl)  # its job is gone: a new request now
    return None


def view(job: Job) -> JobView:
    """The job as `GET /jobs/{id}` shows it."""
    state = STATES[job.status]
    error = job.error.strip().splitlines()[-1] if job.error and job.error.strip() else None
    return JobView(
        job_id=job.key,
        name=job.function,
        state=state,
        attempts=job.attempts,
        result=job.result if state == "succeeded" else None,
        error=error if state != "succeeded" else None,
    )


async def find(queue: RedisQueue, job_id: str, owner: str | None) -> JobView | None:
    """The job `job_id` as its owner sees it; None when unknown, expired or another's.

    Raises redis-py's RedisError when Redis does not answer.
    """
    if not JOB_ID.fullmatch(job_id):  # not one `new_job_id` makes: no Redis read
        return None
    job = await queue.job(job_id)
    if job is None or job.meta.get("owner") != owner:
        return None
    return view(job)
