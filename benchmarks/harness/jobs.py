"""The jobs scenario: the baked task queue (SAQ on Redis) next to FastAPI's BackgroundTasks.

Latency and throughput (`jobs_run`): `jobs` no-op jobs, enqueued as fast as the enqueuers
are answered, each recording when it started next to the time it was enqueued (both
`time.time()`: the harness and the servers read the same machine's clock).

- `queue-1`, `queue-2`: the service's worker (`servers/jobs_worker.py`) in 1 or 2 processes,
  on a Redis of the run's own; `enqueuers` tasks of this process each call the service's
  `enqueue` as soon as their last call returned; every job pushes its times to a Redis list.
- `background`: `servers/background.py` under uvicorn; `enqueuers` keep-alive connections
  each POST as soon as their last answer came; the app schedules the no-op with
  BackgroundTasks and keeps its times in memory.

Kill (`kill_run`): 2 workers with JOB_HEARTBEAT_TIMEOUT=3; `jobs` jobs, each with an effect
a second run must not repeat; one worker is SIGKILLed once `kill_at` of them finished, right
after it started a job; then every job must succeed and every effect be counted exactly
once, or the run fails.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from . import procs
from .client import percentile
from .httpload import all_or_none, post_each
from .jobqueue import TaskQueue, task_queue
from .scenarios import MIN_CPU, Figures
from .variants import Redis, Workspace, launch

VARIANTS = ("background", "queue-1", "queue-2")
REFERENCE = "background"
KILL_VARIANT = "queue-kill"
WORKERS = {"queue-1": 1, "queue-2": 2}
# The kill run's JOB_HEARTBEAT_TIMEOUT: the service's minimum, so a killed worker's jobs are
# taken back soonest (about 2 x this + 5 s, the service's README says).
HEARTBEAT = 3


@dataclass(frozen=True)
class Jobs:
    """What one latency run does: `jobs` no-op jobs from `enqueuers` enqueuers, each
    enqueuing as soon as its last enqueue was answered; `timeout` bounds each wait (s)."""

    jobs: int
    enqueuers: int = 4
    timeout: float = 120.0


@dataclass(frozen=True)
class Kill:
    """What one kill run does: `jobs` jobs of `work` seconds on 2 workers running
    `concurrency` jobs at once each, one SIGKILLed once `kill_at` (a share) of the jobs
    finished; `timeout` bounds each wait (s)."""

    jobs: int
    work: float = 0.05
    concurrency: int = 10
    kill_at: float = 0.5
    enqueuers: int = 4
    timeout: float = 180.0


async def jobs_run(space: Workspace, variant: str, spec: Jobs) -> Figures:
    """One latency and throughput run of `variant` (see the module's docstring)."""
    if variant == "background":
        return await background_run(space, spec)
    return await queue_run(space, WORKERS[variant], spec)


async def queue_run(space: Workspace, workers: int, spec: Jobs) -> Figures:
    """No-op jobs through the service's queue to `workers` worker processes."""
    redis = Redis(procs.free_port())
    await redis.start(space.logs)
    assert redis.process is not None
    try:
        async with task_queue(space, redis, workers, {}) as jobs:
            started = jobs.key("started")

            def arguments() -> dict[str, Any]:
                return {"enqueued": time.time(), "into": started}

            cpu_start, redis_start = jobs.cpu_seconds(), redis.process.cpu_seconds()
            calls_start = await _calls(jobs)
            client_start = time.process_time()
            first = time.time()
            enqueuing = asyncio.create_task(
                _enqueue(jobs, spec.jobs, spec.enqueuers, "noop", arguments)
            )
            reporting = asyncio.create_task(jobs.pop(started, spec.jobs, spec.timeout))
            try:
                (ids, enqueued_by), reported = await asyncio.gather(enqueuing, reporting)
            finally:  # after an error, the other stops too
                enqueuing.cancel()
                reporting.cancel()
            # Every job started; the queue's bookkeeping of the last ones (their state, their
            # progress events) is part of their cost too.
            await jobs.drained(spec.timeout)
            wall = time.time() - first
            cpu = jobs.cpu_seconds() - cpu_start
            redis_cpu = redis.process.cpu_seconds() - redis_start
            client_cpu = time.process_time() - client_start
            calls = {
                name: count - calls_start.get(name, 0)
                for name, count in (await _calls(jobs)).items()
            }
            # Checked, not timed: every job succeeded, none ran twice (no worker died here).
            views = await jobs.states(ids, spec.timeout)
            extra_starts = await jobs.lists.llen(started)
    finally:
        redis.stop()
    succeeded = sum(1 for view in views.values() if view.state == "succeeded")
    if succeeded < spec.jobs or extra_starts:
        raise RuntimeError(
            f"{succeeded} of {spec.jobs} no-op jobs succeeded, {extra_starts} started again"
        )
    pairs = [_pair(entry) for entry in reported]
    return {
        **_timing(pairs, first, enqueued_by),
        "cpu_us_per_job": cpu * 1e6 / spec.jobs if cpu >= MIN_CPU else None,
        "redis_cpu_us_per_job": redis_cpu * 1e6 / spec.jobs if redis_cpu >= MIN_CPU else None,
        # Commands Redis ran per job, the enqueue's included, in all and by command.
        "redis_commands_per_job": sum(calls.values()) / spec.jobs,
        "redis_calls_per_job": {
            name: count / spec.jobs for name, count in sorted(calls.items()) if count
        },
        "jobs": spec.jobs,
        "succeeded": succeeded,
        "extra_starts": extra_starts,
        "errors": 0,
        # Near 1.0 this process (the enqueuers), not the workers, set the pace.
        "client_cpu_share": client_cpu / wall,
        "server_cpu_share": cpu / wall,
    }


async def background_run(space: Workspace, spec: Jobs) -> Figures:
    """No-op jobs scheduled with BackgroundTasks by `POST /jobs` (servers/background.py)."""
    server = await launch("background", space)
    try:
        cpu_start = server.process.cpu_seconds()
        client_start = time.process_time()
        first = time.time()
        # A generator: each path is made as its request is about to be sent.
        paths = (f"/jobs?enqueued={time.time()!r}" for _ in range(spec.jobs))
        errors = await post_each(server.port, paths, spec.enqueuers)
        enqueued_by = time.time()
        async with httpx.AsyncClient() as http:
            answer = await http.get(
                f"http://127.0.0.1:{server.port}/started",
                params={"count": spec.jobs, "timeout": spec.timeout},
                timeout=spec.timeout + 10,
            )
        answer.raise_for_status()
        pairs: list[tuple[float, float]] = [tuple(pair) for pair in answer.json()]
        wall = time.time() - first
        # (With the app's answer listing every job's times: a few ms against N requests.)
        cpu = server.process.cpu_seconds() - cpu_start
        client_cpu = time.process_time() - client_start
    finally:
        server.stop()
    if len(pairs) < spec.jobs:
        raise TimeoutError(
            f"{len(pairs)} of {spec.jobs} background tasks started in {spec.timeout}s"
        )
    return {
        **_timing(pairs, first, enqueued_by),
        "cpu_us_per_job": cpu * 1e6 / spec.jobs if cpu >= MIN_CPU else None,
        "jobs": spec.jobs,
        "succeeded": len(pairs),
        "extra_starts": len(pairs) - spec.jobs,
        "errors": errors,
        "client_cpu_share": client_cpu / wall,
        "server_cpu_share": cpu / wall,
    }


async def _enqueue(
    jobs: TaskQueue,
    count: int,
    enqueuers: int,
    function: str,
    arguments: Callable[[], dict[str, Any]],
) -> tuple[list[str], float]:
    """Enqueue `count` jobs of `function` from `enqueuers` tasks, each enqueuing as soon as
    its last enqueue returned, with the keyword arguments `arguments()` makes just before.
    Their ids, and the time.time() the last enqueue returned."""
    ids: list[str] = []
    left = iter(range(count))  # shared: each task takes the next job to enqueue

    async def enqueuer() -> None:
        for _ in left:
            ids.append(await jobs.enqueue(function, **arguments()))

    await all_or_none([enqueuer() for _ in range(enqueuers)])
    return ids, time.time()


def _timing(pairs: list[tuple[float, float]], first: float, enqueued_by: float) -> Figures:
    """Latency and throughput from each job's (enqueued, started) times, `first` the time
    the first enqueue began and `enqueued_by` the time the last one was answered."""
    latencies = sorted(started - enqueued for enqueued, started in pairs)
    last = max(started for _, started in pairs)
    count = len(pairs)
    return {
        # Jobs started per second, from the first enqueue to the last start.
        "jobs_per_s": count / (last - first),
        "p50_ms": _ms(percentile(latencies, 0.50)),
        "p99_ms": _ms(percentile(latencies, 0.99)),
        "max_ms": _ms(latencies[-1]),
        # How fast the enqueuers were answered: near jobs/s, the enqueuers set the pace.
        "enqueues_per_s": count / (enqueued_by - first),
        "seconds": last - first,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


def _pair(entry: str) -> tuple[float, float]:
    enqueued, started = entry.split()
    return float(enqueued), float(started)


async def _calls(jobs: TaskQueue) -> dict[str, int]:
    """Commands Redis has run since it started, by command (INFO commandstats)."""
    stats = await jobs.lists.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(entry["calls"]) for name, entry in stats.items()}


async def kill_run(space: Workspace, spec: Kill) -> Figures:
    """Kill one of 2 workers mid-run (SIGKILL, as the OOM killer would); raises unless every
    job succeeded and every effect was counted exactly once."""
    redis = Redis(procs.free_port())
    await redis.start(space.logs)
    settings = {
        "JOB_HEARTBEAT_TIMEOUT": str(HEARTBEAT),
        "WORKER_CONCURRENCY": str(spec.concurrency),
    }
    try:
        async with task_queue(space, redis, 2, settings) as jobs:
            prefix, finished = jobs.key("effect"), jobs.key("finished")
            arguments = {"work": spec.work, "prefix": prefix, "into": finished}
            threshold = max(1, math.ceil(spec.jobs * spec.kill_at))
            first = time.time()
            # Every job is queued long before half of them finished (an enqueue takes well
            # under a millisecond, a job `work`), and `done_at_kill` says how many really had.
            ids, _ = await _enqueue(jobs, spec.jobs, spec.enqueuers, "effect", lambda: arguments)
            before = await jobs.pop(finished, threshold, spec.timeout)
            victim = jobs.workers[0]
            await _started_one(jobs, prefix, victim, spec.timeout)
            in_flight = await _running(jobs, prefix, victim)
            done_at_kill = len(before) + await jobs.lists.llen(finished)
            killed_at = time.time()
            victim.kill()
            views = await jobs.states(ids, spec.timeout)
            after = await jobs.lists.lrange(finished, 0, -1)
            counts = [
                int(count or 0)
                for count in await jobs.lists.mget([f"{prefix}:effects:{i}" for i in ids])
            ]
    finally:
        redis.stop()
    attempts = [view.attempts for view in views.values()]
    succeeded = sum(1 for view in views.values() if view.state == "succeeded")
    twice = sum(1 for count in counts if count > 1)
    missing = sum(1 for count in counts if count == 0)
    if succeeded < spec.jobs or twice or missing:
        raise RuntimeError(
            f"after kill -9: {succeeded} of {spec.jobs} jobs succeeded, {twice} effects "
            f"counted twice, {missing} never"
        )
    last = max(float(at) for at in [*before, *after])
    return {
        "jobs": spec.jobs,
        "succeeded": succeeded,
        "succeeded_share": succeeded / spec.jobs,
        # Jobs whose function had returned when the worker was killed, and those it was running.
        "done_at_kill": done_at_kill,
        "in_flight_at_kill": in_flight,
        # Jobs run more than once: those the killed worker had taken, run again by the other.
        "ran_twice": sum(1 for count in attempts if count > 1),
        "max_attempts": max(attempts),
        "effects_twice": twice,
        "effects_missing": missing,
        "effect_once_share": sum(1 for count in counts if count == 1) / spec.jobs,
        # From the SIGKILL to the last job's function returning.
        "kill_to_last_s": last - killed_at,
        "seconds": last - first,
    }


async def _started_one(jobs: TaskQueue, prefix: str, worker: procs.Process, timeout: float) -> None:
    """Return as soon as `worker` starts its next `effect` job.

    Right after a job started, its worker is sure to have it in flight. Not right after one
    finished: workers whose jobs all last as long run them in step and finish theirs
    together, so a worker looked at then is between two jobs, every time.
    """
    starts, pid = f"{prefix}:starts", str(worker.pid)
    await jobs.lists.delete(starts)  # the starts so far: past moments
    try:
        while (await jobs.pop(starts, 1, timeout)) != [pid]:
            pass
    except TimeoutError:
        raise RuntimeError(f"{worker.name} started no job in {timeout}s") from None


async def _running(jobs: TaskQueue, prefix: str, worker: procs.Process) -> int:
    """How many `effect` jobs `worker` is running (each counts itself under its pid)."""
    count = await jobs.lists.hget(f"{prefix}:running", str(worker.pid))
    return int(count or 0)
