"""The worker, which `python -m {{ cookiecutter.package_name }} worker` runs until stopped.

SAQ's worker, configured for what the README promises:

- At least once: a running job's worker touches it every third of
  JOB_HEARTBEAT_TIMEOUT; a job untouched for that long (its worker killed,
  its host gone) is taken back by the next sweep of any worker (every
  JOB_HEARTBEAT_TIMEOUT seconds) and run again. Worst case, a lost job runs
  again about 2 x JOB_HEARTBEAT_TIMEOUT + 1 seconds after its worker died,
  plus its retry delay and 0.2 s for each job lost with it.
- Retries: a job that raises runs again after JOB_RETRY_DELAY seconds,
  doubling (with jitter) up to JOB_RETRY_MAX_DELAY, at most JOB_RETRIES
  times; then it is failed, with its error.
- Graceful stop: SIGTERM or SIGINT stops taking jobs; running ones get
  WORKER_SHUTDOWN_TIMEOUT seconds to finish, then are cancelled and queued
  to run again. An idle worker stops within DEQUEUE_WAIT seconds.
- Health: each worker writes its info to Redis every WORKER_INFO_INTERVAL
  seconds, expiring a second later; `worker --check` exits 0 only while a
  worker of this host has.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from croniter import croniter
from redis.exceptions import RedisError
from saq import CronJob, Job, Status, Worker
from saq.queue.redis import RedisQueue
from saq.types import TimersDict, WorkerInfo

from ..logs import current_job_id
from ..metrics import jobs as metrics
from ..redis_client import create_redis
from ..settings import Settings
from .context import JobContext, JobFunction
from .engine import Queue
from .jobs import FUNCTIONS, report_queue
{%- if cookiecutter.use_websockets %}
from .progress import JobProgress
{%- endif %}
from .queue import DEQUEUE_WAIT, {% if cookiecutter.use_websockets %}STATES, {% endif %}create_queue, job_options, view

logger = logging.getLogger(__name__)

# Seconds between a worker's writes of its info (its health signal); each
# write lives one second longer than this.
WORKER_INFO_INTERVAL = 10
# How often a worker looks for scheduled jobs (and retries) that are due, in seconds.
SCHEDULE_INTERVAL = 1
# How often a worker looks whether one of its running jobs was aborted, in seconds.
ABORT_INTERVAL = 1
# A running job is touched this many times per JOB_HEARTBEAT_TIMEOUT.
BEATS_PER_TIMEOUT = 3
# Seconds the workers' clocks may differ by without a periodic job running
# twice in one period (each period's lease outlives its time by this much).
MAX_CLOCK_SKEW = 60
# Seconds a periodic job's run is kept once finished.
PERIODIC_RESULT_TTL = 600


def worker_id() -> str:
    """`<hostname>-<pid>`: unique per process, and tells a host's own workers apart."""
    return f"{socket.gethostname()}-{os.getpid()}"


def with_heartbeat(function: JobFunction, interval: float) -> JobFunction:
    """`function`, touching its job every `interval` seconds while it runs.

    SAQ only marks a job alive when the job calls `job.update()` itself; this
    does it for every job, so that a long job is never taken for a lost one.
    The touching stops before the function's result is recorded.
    """

    @functools.wraps(function)
    async def run(ctx: JobContext, **kwargs: Any) -> Any:
        beating = asyncio.create_task(_beat(ctx["job"], interval))
        try:
            return await function(ctx, **kwargs)
        finally:
            beating.cancel()
            await asyncio.wait({beating})

    return run


async def _beat(job: Job, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)  # a period, not a wait for something
        try:
            await job.update()
        except RedisError as exc:
            logger.warning("job %s: heartbeat failed: %s", job.key, exc)


def measured(function: JobFunction) -> JobFunction:
    """`function`, counted in the job metrics (metrics/jobs.py) while it runs, under
    its job's function name; the outcome is counted by `Lifecycle.after_process`."""

    @functools.wraps(function)
    async def run(ctx: JobContext, **kwargs: Any) -> Any:
        with metrics.attempt(ctx["job"].function):
            return await function(ctx, **kwargs)

    return run


class GracefulWorker(Worker[JobContext]):
    """SAQ's worker, with a stop that waits for running jobs only, and one run per period.

    SAQ's `stop` waits up to the grace period for all of its tasks, its
    upkeep loops too, which sleep up to the sweep interval between rounds: a
    worker with nothing to do would take that long to stop. And its idle job
    slots went on taking jobs meanwhile.

    SAQ offers each periodic job's next run under one key per job, refused
    only while an earlier run is unfinished: a worker whose clock lagged
    offered a period again once it had run, and a run still unfinished made
    the next period be skipped. Here every period is leased in Redis under its
    own time (SET NX, kept MAX_CLOCK_SKEW seconds past it): the first worker to
    offer it queues it, as a job of its own.
    """

    async def worker_info(self, ttl: int = 60) -> WorkerInfo:
        # Every WORKER_INFO_INTERVAL: while Redis is down, one line, not a traceback.
        try:
            return await super().worker_info(ttl)
        except (RedisError, OSError) as exc:
            logger.warning("writing this worker's health signal: Redis failed (%s)", exc)
            return {"queue_key": self.queue.name, "stats": None, "metadata": None}

    async def schedule(self, lock: int = 1) -> None:
        # Every SCHEDULE_INTERVAL: while Redis is down, one line each time, not a traceback.
        try:
            await self._schedule(lock)
        except (RedisError, OSError) as exc:
            logger.warning("scheduling jobs: Redis failed (%s); trying again", exc)

    async def _schedule(self, lock: int) -> None:
        assert isinstance(self.queue, Queue)  # create_worker's
        for periodic in self.cron_jobs:
            name = periodic.function.__qualname__
            at = int(croniter(periodic.cron, datetime.now(self.cron_tz)).get_next())
            key = f"cron:{name}:{at}"
            lease = self.queue.namespace(key)
            held_for = max(1, at - int(time.time()) + MAX_CLOCK_SKEW)
            if await self.queue.redis.set(lease, 1, nx=True, ex=held_for):
                options = {
                    option: getattr(periodic, option)
                    for option in ("timeout", "heartbeat", "retries", "ttl")
                    if getattr(periodic, option) is not None
                }
                await self.queue.enqueue(Job(function=name, key=key, scheduled=at, **options))
        # Due jobs (periodic ones, retries after their delay) onto the queued list.
        await self.queue.schedule(lock)

    async def stop(self) -> None:
        if isinstance(self.queue, Queue):
            self.queue.stop_taking()
        for task in self.tasks:
            if task.get_name() != "process":  # SAQ's name for a task that takes and runs jobs
                task.cancel()
        await super().stop()


class Lifecycle:
    """The worker's hooks: its resources, and a log line (and an event) per attempt."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def startup(self, ctx: JobContext) -> None:
        ctx["settings"] = self._settings
        assert self._settings.redis_url is not None  # create_queue checked it
        ctx["redis"] = create_redis(self._settings.redis_url, timeout=self._settings.redis_timeout)
{%- if cookiecutter.use_websockets %}
        ctx["progress"] = JobProgress(ctx["redis"], self._settings)
{%- endif %}

    async def shutdown(self, ctx: JobContext) -> None:
        if "redis" in ctx:
            await ctx["redis"].aclose()

    async def before_process(self, ctx: JobContext) -> None:
        job = ctx["job"]
        # SAQ runs each attempt in a task of its own, from here to after_process,
        # and the job in a task started from it: every line of the attempt has it.
        current_job_id.set(job.key)
        logger.info(
            "job %s %s: attempt %d of %d started", job.function, job.key, job.attempts, job.retries
        )
{%- if cookiecutter.use_websockets %}
        await ctx["progress"].publish(job.key, "running", attempt=job.attempts)
{%- endif %}

    async def after_process(self, ctx: JobContext) -> None:
        job = ctx["job"]
        name, key, attempt = job.function, job.key, job.attempts
        error = view(job).error if job.error else None
        if job.status == Status.COMPLETE:
            metrics.ended(name, "succeeded")
            logger.info("job %s %s: attempt %d succeeded", name, key, attempt)
        elif job.status == Status.QUEUED:
            metrics.ended(name, "retried")
            logger.warning(
                "job %s %s: attempt %d of %d failed (%s); it will run again",
                name,
                key,
                attempt,
                job.retries,
                error,
            )
        else:
            metrics.ended(name, "failed")
            logger.error(
                "job %s %s: attempt %d of %d failed (%s); no attempts left",
                name,
                key,
                attempt,
                job.retries,
                error,
            )
{%- if cookiecutter.use_websockets %}
        state = "retrying" if job.status == Status.QUEUED else STATES[job.status]
        await ctx["progress"].publish(key, state, attempt=attempt, **_outcome(job))
{%- endif %}
{%- if cookiecutter.use_websockets %}


def _outcome(job: Job) -> dict[str, Any]:
    shown = view(job)
    return {"result": shown.result} if shown.state == "succeeded" else {"error": shown.error}
{%- endif %}


def create_worker(
    settings: Settings, queue: RedisQueue, functions: Iterable[JobFunction] = FUNCTIONS
) -> Worker[JobContext]:
    """A worker for `queue` running `functions` (and the periodic report), not started."""
    interval = settings.job_heartbeat_timeout / BEATS_PER_TIMEOUT
    beating = {with_heartbeat(measured(function), interval) for function in functions}
    options = job_options(settings)
    periodic = CronJob(
        with_heartbeat(measured(report_queue), interval),
        cron=settings.queue_report_cron,
        timeout=options["timeout"],
        heartbeat=options["heartbeat"],
        retries=1,  # a missed report is not worth a retry: the next one comes
        # Each run is a job of its own: kept briefly, however often the schedule fires.
        ttl=min(options["ttl"], PERIODIC_RESULT_TTL),
    )
    lifecycle = Lifecycle(settings)
    # All four, though SAQ fills in what is missing: its partial type requires them (saq 0.26).
    timers: TimersDict = {
        "abort": ABORT_INTERVAL,
        "schedule": SCHEDULE_INTERVAL,
        "sweep": settings.job_heartbeat_timeout,
        "worker_info": WORKER_INFO_INTERVAL,
    }
    return GracefulWorker(
        queue,
        functions=beating,
        id=worker_id(),
        concurrency=settings.worker_concurrency,
        cron_jobs=[periodic],
        startup=lifecycle.startup,
        shutdown=lifecycle.shutdown,
        before_process=lifecycle.before_process,
        after_process=lifecycle.after_process,
        timers=timers,
        dequeue_timeout=DEQUEUE_WAIT,
        shutdown_grace_period_s=settings.worker_shutdown_timeout,
    )


async def run(settings: Settings, functions: Iterable[JobFunction] = FUNCTIONS) -> None:
    """Run a worker until SIGTERM or SIGINT; raises ValueError when REDIS_URL is unset."""
    queue = create_queue(settings, worker=True)
    worker = create_worker(settings, queue, functions)
    await queue.connect()
    try:
        logger.info("worker %s: taking jobs from %s", worker.id, queue.name)
        await worker.start()
    finally:
        await queue.disconnect()
        logger.info("worker %s: stopped", worker.id)


async def healthy(settings: Settings) -> bool:
    """Whether a worker on this host wrote its info within the last WORKER_INFO_INTERVAL + 1 s."""
    queue = create_queue(settings)
    await queue.connect()
    try:
        info = await queue.info()
    finally:
        await queue.disconnect()
    host = socket.gethostname()
    # Ids are `<hostname>-<pid>`; a hostname may hold "-" too, a pid never does.
    return any(str(worker).rpartition("-")[0] == host for worker in info.get("workers", {}))
