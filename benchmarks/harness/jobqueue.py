"""The baked task queue as the harness drives it: the service's own `enqueue` and `find`,
imported from the bake into this process, its worker processes (`servers/jobs_worker.py`),
and the Redis lists their jobs write to.

The harness and its workers read the same settings: the workers get them as their whole
environment (`variants.service_environment`), this process builds the bake's `Settings` from
the same values and nothing else, so a job's options (retries, heartbeat) are the ones the
workers were started with.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from redis.asyncio import Redis as RedisClient

from . import procs
from .variants import LOG_LEVEL, SERVERS, Redis, Workspace, package_of, service_environment

WORKER = SERVERS / "jobs_worker.py"
# Jobs whose state is read at once (one Redis GET each): the queue's client opens a
# connection per command in flight.
READ_BATCH = 100
# Seconds between two reads of the states of the jobs still running.
STATE_POLL = 0.1
# Seconds between two looks at whether any job is left, when the last ones are finishing.
DRAIN_POLL = 0.01


def _imported(src: Path, module: str) -> Any:
    """`<package>.<module>` of the bake at `src`, imported into this process."""
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))
    return importlib.import_module(f"{package_of(src)}.{module}")


def _settings(src: Path, values: dict[str, str]) -> Any:
    """The bake's Settings from `values` (environment names) and defaults alone: neither
    this process's environment nor a `.env` adds to them, as neither reaches the workers."""
    base = _imported(src, "settings").Settings

    class Given(base):  # type: ignore[misc,valid-type]  # the bake's class, known at run time
        @classmethod
        def settings_customise_sources(cls, settings_cls: Any, init_settings: Any, **_: Any) -> Any:
            return (init_settings,)

    return Given(**{name.lower(): value for name, value in values.items()})


class TaskQueue:
    """The bake's queue on one Redis, with the worker processes this run started."""

    def __init__(self, space: Workspace, redis: Redis, settings: dict[str, str]) -> None:
        self.space = space
        self.src = space.jobs_bake()
        self.values = {"REDIS_URL": redis.url, "LOG_LEVEL": LOG_LEVEL, **settings}
        self.settings = _settings(self.src, self.values)
        self.api = _imported(self.src, "tasks.queue")
        self.queue = self.api.create_queue(self.settings)
        # The lists the jobs write to (replies decoded to str, as the workers' client).
        self.lists = RedisClient.from_url(redis.url, decode_responses=True)
        self.workers: list[procs.Process] = []

    def key(self, *parts: str) -> str:
        """A Redis key of this benchmark, under the service's REDIS_PREFIX."""
        key: str = self.settings.redis_key("bench", *parts)
        return key

    def start_worker(self) -> procs.Process:
        """Start one worker process (it takes jobs once `wait_taking` says so)."""
        name = f"jobs-worker-{len(self.workers) + 1}-{procs.free_port()}"  # unique log name
        argv = [self.space.python, str(WORKER), package_of(self.src)]
        # Each worker serves its metrics, as deployed: on a port of its own (9101 by default).
        values = {**self.values, "WORKER_METRICS_PORT": str(procs.free_port())}
        env = service_environment(self.src, values)
        # In the bake's folder: no .env there, the environment is the whole configuration.
        worker = procs.start(name, argv, env=env, cwd=self.src.parent, log_dir=self.space.logs)
        self.workers.append(worker)
        return worker

    async def enqueue(self, function: str, **kwargs: Any) -> str:
        """The service's `enqueue`: the job's id once Redis has it."""
        job_id: str = await self.api.enqueue(
            self.queue, self.settings, function, owner=None, **kwargs
        )
        return job_id

    async def wait_taking(self, timeout: float) -> None:
        """Return once every started worker has run a job: enqueue a probe, wait for the id
        of the worker that ran it, again until each has answered."""
        probed, answered = self.key("probed"), set[str]()
        deadline = time.monotonic() + timeout
        while len(answered) < len(self.workers):
            await self.enqueue("probe", into=probed)
            while True:
                for worker in self.workers:
                    if not worker.alive():
                        raise RuntimeError(f"{worker.name} exited:\n{worker.log_tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{len(answered)} of {len(self.workers)} workers ran a job in {timeout}s"
                    )
                # Waits in Redis for the probe's answer; a second at most, to look at the workers.
                popped = await self.lists.blpop([probed], timeout=min(1.0, left))
                if popped is not None:
                    answered.add(str(popped[1]))
                    break

    async def pop(self, key: str, count: int, timeout: float) -> list[str]:
        """The first `count` entries of the list `key`, popped as the jobs push them;
        TimeoutError after `timeout` seconds, naming how many came."""
        entries: list[str] = []
        deadline = time.monotonic() + timeout
        while len(entries) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(entries)} of {count} jobs reported in {timeout}s")
            # BLPOP waits in Redis for the next entry; LPOP takes those behind it at once.
            popped = await self.lists.blpop([key], timeout=min(1.0, left))
            if popped is None:
                continue
            entries.append(str(popped[1]))
            if len(entries) == count:
                break
            rest = await self.lists.lpop(key, count - len(entries))
            if isinstance(rest, list):  # with a count: a list, or None when the list is empty
                entries.extend(str(entry) for entry in rest)
        return entries

    async def drained(self, timeout: float) -> None:
        """Return once no job is queued or running; TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while await self.queue.count("queued") or await self.queue.count("active"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs still queued or running after {timeout}s")
            # Two list lengths in Redis: nothing to wait on but reading them again.
            await asyncio.sleep(DRAIN_POLL)

    async def states(self, job_ids: Iterable[str], timeout: float) -> dict[str, Any]:
        """Each job's view (the service's `find`) once none is queued or running; TimeoutError
        after `timeout` seconds, naming how many were still queued or running."""
        pending = sorted(job_ids)
        views: dict[str, Any] = {}
        deadline = time.monotonic() + timeout
        while True:
            still: list[str] = []
            for start in range(0, len(pending), READ_BATCH):
                batch = pending[start : start + READ_BATCH]
                found = await asyncio.gather(*(self.api.find(self.queue, j, None) for j in batch))
                for job_id, view in zip(batch, found, strict=True):
                    if view is None:
                        raise RuntimeError(f"job {job_id} is gone from Redis")
                    if view.state in ("queued", "running"):
                        still.append(job_id)
                    else:
                        views[job_id] = view
            pending = still
            if not pending:
                return views
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} jobs still queued or running after {timeout}s")
            # A job's state is its record in Redis, and reading it again is how `GET /jobs/{id}`
            # clients learn it changed: there is nothing to wait on.
            await asyncio.sleep(STATE_POLL)

    def cpu_seconds(self) -> float:
        """CPU time of the live worker processes so far (utime + stime, /proc)."""
        return procs.cpu_seconds(pid for worker in self.workers for pid in worker.tree())


@asynccontextmanager
async def task_queue(
    space: Workspace, redis: Redis, workers: int, settings: dict[str, str], timeout: float = 60.0
) -> AsyncIterator[TaskQueue]:
    """The queue at `redis` with `workers` worker processes, each taking jobs; stopped (the
    workers, the connections) on the way out."""
    jobs = TaskQueue(space, redis, settings)  # raises Unavailable without a task queue bake
    try:
        await jobs.queue.connect()
        for _ in range(workers):
            jobs.start_worker()
        await jobs.wait_taking(timeout)
        yield jobs
    finally:
        for worker in jobs.workers:
            worker.stop()
        await jobs.queue.disconnect()
        await jobs.lists.aclose()
