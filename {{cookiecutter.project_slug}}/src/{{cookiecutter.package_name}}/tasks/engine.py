"""SAQ's Redis queue, with how a worker takes a job and takes a lost one back made safe.

SAQ 0.26 (github.com/tobymao/saq) falls short in three places, each a race
or a wait that loses or repeats work; `Queue` overrides the three methods
involved and nothing else (pyproject pins 0.26: this relies on its Redis layout).

- Taking a job. SAQ moves it to the active list, then marks it active in a
  second step, and its sweeper takes any unmarked job of that list for a lost
  one (saq#277): a sweep in between aborted a job as it started and
  overwrote its outcome. Here the job is marked and moved in one Lua step.
  One slot of a process waits for a job at a time: each job woke every idle
  slot of every worker, and all but one lost the race to take it.
- Taking a lost job back. SAQ's sweep judges every job of one snapshot of the
  active list, and waits up to 5 s for each lost job's dead worker to confirm
  an abort: ten lost jobs came back over 50 s, healthy jobs judged on a stale
  snapshot were aborted, and a worker stopped mid-sweep left a job aborting
  for ever. Here each job is read just before it is judged, and taken back
  in one Lua step that first checks it is unchanged: a job its worker
  touched meanwhile stays, and a stop between two jobs leaves no job half done.
- A worker that lost its job. A job taken back while its worker was alive
  after all (its event loop blocked past the heartbeat timeout) was written
  over by that worker's late heartbeats and outcome: a failed job came back,
  a finished one ran again, records lost their expiry. Each run of a job
  carries a token of its own (`meta["run"]`); a write from a run the queue
  no longer knows is dropped.
- Stopping. A stopping worker takes no more jobs, and a Redis that does not
  answer is retried with backoff and jitter, not in a busy loop. A job
  cancelled at shutdown with no attempts left fails instead of running again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from typing import Any

from redis.exceptions import RedisError
from saq import Job, Status
from saq.queue.redis import RedisQueue
from saq.utils import now

from ..metrics import jobs as metrics

logger = logging.getLogger(__name__)

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

# Takes a lost job back, only if its data is still what the sweeper read
# (ARGV[1]): off the active list, its new data (ARGV[2]) written, then queued
# to run at ARGV[3] (seconds since the epoch; 0: at once) or, when ARGV[3] is
# -1 (no attempts left), kept ARGV[4] seconds as failed.
_TAKE_BACK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
end
redis.call('LREM', KEYS[2], 0, KEYS[1])
if ARGV[3] == '-1' then
    redis.call('ZREM', KEYS[3], KEYS[1])
    redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[4])
else
    redis.call('SET', KEYS[1], ARGV[2])
    redis.call('ZADD', KEYS[3], ARGV[3], KEYS[1])
    if ARGV[3] == '0' then
        redis.call('RPUSH', KEYS[4], KEYS[1])
    end
end
return 1
"""

# Waiting for Redis after a failed command: the first wait, and the longest (seconds).
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0

# Where a job's current run token lives, and the statuses a queued job may have.
RUN = "run"
RUNNABLE = (Status.NEW, Status.QUEUED)

# What a lost job's error says.
LOST = "lost: its worker stopped sending heartbeats (killed, or its host gone)"


class Queue(RedisQueue):
    """SAQ's `RedisQueue`, taking jobs and taking lost ones back as described above."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._taking = asyncio.Lock()
        self._stopping = False
        self._failures = 0  # commands failed in a row while taking jobs
        self._take_script = self.redis.register_script(_TAKE)
        self._take_back_script = self.redis.register_script(_TAKE_BACK)

    def stop_taking(self) -> None:
        """Take no more jobs: `dequeue` answers None from now on, even to a slot waiting."""
        self._stopping = True

    async def dequeue(
        self,
        timeout: float = 0.0,  # noqa: ASYNC109 (SAQ's signature: seconds to block in Redis)
        poll_interval: float = 0.0,
    ) -> Job | None:
        """The next job, marked active and on the active list; None after `timeout` seconds."""
        try:
            async with asyncio.timeout(timeout or None):
                await self._taking.acquire()
        except TimeoutError:
            return None
        try:
            job = await self._take(round(timeout))
        except (RedisError, OSError) as exc:
            await self._back_off(exc)
            return None
        finally:
            self._taking.release()
        self._failures = 0
        return job

    async def _take(self, wait: int) -> Job | None:
        if self._stopping:
            return None
        # Waits for a job and leaves it first in line (BLMOVE to the same list's head).
        job_id = await self.redis.blmove(self._queued, self._queued, wait, "LEFT", "LEFT")
        if job_id is None or self._stopping:
            return None
        job = await self._get_job_by_id(job_id)
        if job is None or job.status not in RUNNABLE:  # gone, or an outdated entry
            await self.redis.lrem(self._queued, 1, _text(job_id))
            return None
        job.status = Status.ACTIVE
        job.started = job.touched = now()
        job.meta[RUN] = uuid.uuid4().hex  # this run's token: see `_current`
        keys = [self._queued, self._active, job.id]
        taken = await self._take_script(keys=keys, args=[self.serialize(job)])
        return job if taken else None

    async def _back_off(self, exc: BaseException) -> None:
        self._failures += 1
        ceiling = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (self._failures - 1))
        delay = random.uniform(0, ceiling)  # full jitter: workers do not retry in step
        logger.warning("taking jobs: Redis failed (%s); trying again in %.1f s", exc, delay)
        await asyncio.sleep(delay)

    async def sweep(self, lock: int = 60, abort: float = 0.0) -> list[str]:
        """Take back the jobs whose worker is gone; their ids. One sweep per `lock` seconds
        across every worker.

        A job is lost when it went unmarked by its worker for its `heartbeat`
        seconds, or ran past its `timeout`; it runs again after its retry delay
        while it has attempts left, else it is failed with the error LOST.
        `abort` is SAQ's parameter, unused: nothing waits for a dead worker.
        While Redis is down, one line says so (not a traceback) and none is swept.
        """
        try:
            return await self._sweep_once(lock)
        except (RedisError, OSError) as exc:
            logger.warning("sweeping lost jobs: Redis failed (%s); trying again", exc)
            return []

    async def _sweep_once(self, lock: int) -> list[str]:
        if not await self.redis.set(self._sweep, 1, ex=lock, nx=True):
            return []
        swept = []
        for job_id in await self.redis.lrange(self._active, 0, -1):
            data = await self.redis.get(job_id)
            job = self.deserialize(data)
            if job is None:  # its data expired or was deleted: nothing to run
                await self.redis.lrem(self._active, 0, _text(job_id))
            elif (job.status != Status.ACTIVE or job.stuck) and await self._take_back(job, data):
                swept.append(job.key)
        return swept

    async def _take_back(self, job: Job, data: Any) -> bool:
        retry = job.retryable
        job.error = LOST
        job.meta.pop(RUN, None)  # the lost run's writes are dropped from now on
        if retry:
            delay = job.next_retry_delay()
            job.status, job.started, job.completed, job.touched = Status.QUEUED, 0, 0, now()
            when = round(time.time() + delay, 3) if delay else 0
        else:
            job.status, job.completed = Status.FAILED, now()
            when = -1
        keys = [job.id, self._active, self._incomplete, self._queued]
        args = [data, self.serialize(job), when, max(job.ttl, 1)]
        if not await self._take_back_script(keys=keys, args=args):
            return False  # its worker touched it since: alive after all
        # Its own worker, gone, never counted the attempt's end.
        metrics.ended(job.function, "retried" if retry else "failed")
        logger.warning(
            "job %s %s: attempt %d lost (its worker stopped sending heartbeats); %s",
            job.function,
            job.key,
            job.attempts,
            "it will run again" if retry else "no attempts left",
        )
        await self.notify(job)
        return True

    async def retry(self, job: Job, error: str | None) -> None:
        """Queue `job` again; with no attempts left (SAQ retries a job cancelled at
        shutdown unconditionally), fail it with `error` instead."""
        if job.retryable:
            await super().retry(job, error)
        else:
            await self.finish(job, Status.FAILED, error=error)

    async def _update(self, job: Job, status: Status | None = None, **kwargs: Any) -> None:
        if await self._current(job):
            await super()._update(job, status, **kwargs)

    async def _retry(self, job: Job, error: str | None) -> None:
        if await self._current(job):
            await super()._retry(job, error)

    async def _finish(
        self, job: Job, status: Status, *, result: Any = None, error: str | None = None
    ) -> None:
        if await self._current(job):
            await super()._finish(job, status, result=result, error=error)

    async def _current(self, job: Job) -> bool:
        # A run's writes (heartbeat, outcome) count while the stored job names that
        # run; one taken back as lost names none. Read, then written: a take-back
        # landing in that round trip loses to it, and the job runs once more.
        run = job.meta.get(RUN)
        if run is None:
            return True  # not a worker's run: SAQ's own enqueue, a take-back
        stored = await self._get_job_by_id(job.id)
        if stored is not None and stored.meta.get(RUN) == run:
            return True
        logger.warning(
            "job %s %s: attempt %d's %s dropped: the job was taken back as lost meanwhile",
            job.function,
            job.key,
            job.attempts,
            job.status.value,
        )
        return False

    async def disconnect(self) -> None:
        """Close the connections; a Redis that does not answer is logged, not raised."""
        try:
            await super().disconnect()
        except (RedisError, OSError) as exc:
            logger.warning("closing the job queue's Redis connections: %s", exc)
            await self.redis.aclose()


def _text(reply: bytes | str) -> str:
    # The queue's client answers bytes; redis-py's types want str for a value.
    return reply if isinstance(reply, str) else reply.decode()
