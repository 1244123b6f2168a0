"""The durable job queue: SAQ's Redis queue, as the web process and the worker open it.

Jobs live in Redis, not in a process: `enqueue` stores one and returns once
Redis has it, any worker process runs it, and `find` reads its state from
Redis, so every web process answers the same about it, before and after
restarts. Delivery is at least once (README, "Durable jobs"): write jobs so
that a second run has no second effect.
"""

from __future__ import annotations

import asyncio
import logging
import math
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
from redis.exceptions import RedisError
from saq import Job, Status
from saq.queue.redis import RedisQueue
from saq.utils import now

from ..readiness import Readiness
from ..redis_client import redis_check
from ..settings import Settings

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

# Seconds the sweeper waits for a lost job's worker to confirm its abort. One
# that died never does. A live one that missed its heartbeats (its event loop
# blocked that long) cancels the job at its next abort check, each second,
# after the job was queued again: the job runs twice, as at least once allows.
SWEEP_ABORT_WAIT = 0.2

JobState = Literal["queued", "running", "succeeded", "failed"]

# SAQ's statuses as this service names them: an aborted job (its retries
# used up by workers that died) failed as surely as one that raised.
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


# Marks the job active (writes its data, ARGV[1]) and moves it from the head
# of the queued list to the active list, in one step: only if it is still the
# job the caller read (another worker may have taken it).
_TAKE = """
if redis.call('LINDEX', KEYS[1], 0) == KEYS[3] then
    redis.call('SET', KEYS[3], ARGV[1])
    redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
    return 1
end
return 0
"""


class Queue(RedisQueue):
    """SAQ's Redis queue, whose workers mark a job active before it enters the active list.

    SAQ moves a job to its active list, then marks it active; its sweeper
    takes any job of that list not marked active for a lost one (saq#277): a
    sweep in that instant aborted a job as it started, queued it again, and
    overwrote its outcome with "swept". Here a worker waits for a job without
    taking it, then marks it active and moves it in one step, so the sweeper
    never sees an unmarked job, nor anyone a job marked but not taken.

    Two more changes, both about lost jobs and waits: one job slot of a
    process waits for a job at a time (each job woke every idle slot of every
    worker, and all but one lost the race to take it, a wasted round trip
    each); and the sweeper waits SWEEP_ABORT_WAIT, not 5 s, for a lost job's
    worker to confirm its abort, since it handles lost jobs one at a time and
    a dead worker never confirms: ten lost jobs came back over 50 s.

    Relies on SAQ 0.26's Redis layout (pyproject pins 0.26).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._taking = asyncio.Lock()

    async def dequeue(
        self,
        timeout: float = 0.0,  # noqa: ASYNC109 (SAQ's signature: seconds to block in Redis)
        poll_interval: float = 0.0,
    ) -> Job | None:
        try:
            async with asyncio.timeout(timeout or None):
                await self._taking.acquire()
        except TimeoutError:
            return None
        try:
            return await self._take(math.ceil(timeout))
        finally:
            self._taking.release()

    async def _take(self, wait: int) -> Job | None:
        # Waits for a job and leaves it first in line (BLMOVE to the same list's head).
        job_id = await self.redis.blmove(self._queued, self._queued, wait, "LEFT", "LEFT")
        if job_id is None:
            return None
        job = await self._get_job_by_id(job_id)
        if job is None:  # its data expired or was deleted: nothing to run
            stale = job_id if isinstance(job_id, str) else job_id.decode()
            await self.redis.lrem(self._queued, 1, stale)
            return None
        job.status = Status.ACTIVE
        job.started = job.touched = now()
        marked = self.serialize(job)
        taken = await self.redis.eval(_TAKE, 3, self._queued, self._active, job.id, marked)
        return job if taken else None

    async def sweep(self, lock: int = 60, abort: float = SWEEP_ABORT_WAIT) -> list[str]:
        """SAQ's sweep, waiting at most SWEEP_ABORT_WAIT seconds per lost job (see above)."""
        return await super().sweep(lock, min(abort, SWEEP_ABORT_WAIT))

    async def disconnect(self) -> None:
        """Close the connections; a Redis that does not answer is logged, not raised."""
        try:
            await super().disconnect()
        except (RedisError, OSError) as exc:
            logger.warning("closing the job queue's Redis connections: %s", exc)
            await self.redis.aclose()


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
    queue: RedisQueue, settings: Settings, function: str, *, owner: str | None, **kwargs: Any
) -> str:
    """Store a job running `function(**kwargs)` in Redis; its id, once Redis has it.

    `owner` (a token's `sub`, None while authentication is off) is the only
    caller `find` shows the job to. Raises redis-py's RedisError when Redis
    cannot take it.
    """
    job_id = new_job_id()
    job = await queue.enqueue(
        function, key=job_id, meta={"owner": owner}, **job_options(settings), **kwargs
    )
    if job is None:  # SAQ's answer for a key already queued: 128 random bits never repeat
        raise RuntimeError(f"job id {job_id} is already queued")
    return job_id


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
