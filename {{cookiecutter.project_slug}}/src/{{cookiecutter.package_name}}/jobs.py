"""Work that runs after the response: tracked, logged when it fails, drained at shutdown.

FastAPI's `BackgroundTasks` runs a job once the response is sent, inside the
request's own task. `JobRunner.run` wraps each job so that a failure is
logged with the job's name and id instead of vanishing, its outcome can be
looked up by id, and shutdown can wait for jobs still running. Each run
counts in the job metrics (metrics/jobs.py) under the job's name.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Literal

from .metrics import jobs as metrics

logger = logging.getLogger(__name__)

JobState = Literal["pending", "running", "succeeded", "failed", "cancelled"]


class JobRunner:
    """Runs jobs, remembers the latest outcomes, and waits for running ones on close."""

    def __init__(self, history: int = 1000) -> None:
        self._history = history
        self._states: OrderedDict[str, JobState] = OrderedDict()
        # Who accepted each job (a token's `sub`; None while authentication is off).
        self._owners: dict[str, str | None] = {}
        self._running = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def accept(self, job_id: str, owner: str | None = None) -> None:
        """Record `owner`'s job as pending; call before handing it to `BackgroundTasks`."""
        self._owners[job_id] = owner
        self._record(job_id, "pending")

    def state(self, job_id: str, owner: str | None = None) -> JobState | None:
        """The job's latest state, or None if unknown, forgotten or not `owner`'s."""
        if self._owners.get(job_id, owner) != owner:
            return None
        return self._states.get(job_id)

    @property
    def running(self) -> int:
        return self._running

    async def run(self, job_id: str, name: str, job: Callable[[], Awaitable[None]]) -> None:
        """Run one job to its end, or until its task is cancelled; never raises.

        Call it last in a task of its own (as `BackgroundTasks` does, after the
        response): a cancellation ends the job with one WARNING, and the task quietly.
        """
        self._running += 1
        self._idle.clear()
        self._record(job_id, "running")
        try:
            with metrics.attempt(name):
                await job()
        except asyncio.CancelledError:
            self._record(job_id, "cancelled")
            metrics.ended(name, "failed")  # for good: nothing runs it again
            logger.warning(
                "job %s (%s) cancelled before it finished", name, job_id, extra={"job_id": job_id}
            )
            # The task is the request's, its response long sent: uvicorn cancels it
            # when shutdown outlasts its graceful timeout, and would log a cancellation
            # let through as "Exception in ASGI application", a traceback per job.
            # The task ends here all the same; uncancel() says it took the request.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        except Exception:
            self._record(job_id, "failed")
            metrics.ended(name, "failed")
            logger.exception("job %s (%s) failed", name, job_id, extra={"job_id": job_id})
        else:
            self._record(job_id, "succeeded")
            metrics.ended(name, "succeeded")
        finally:
            self._running -= 1
            if self._running == 0:
                self._idle.set()

    async def drain(self, deadline: float) -> bool:
        """Wait up to `deadline` seconds for running jobs; True if none is left."""
        try:
            async with asyncio.timeout(deadline):
                await self._idle.wait()
        except TimeoutError:
            logger.warning("shutdown: %d job(s) still running after %gs", self._running, deadline)
            return False
        return True

    def _record(self, job_id: str, state: JobState) -> None:
        self._states[job_id] = state
        self._states.move_to_end(job_id)
        while len(self._states) > self._history:
            forgotten, _ = self._states.popitem(last=False)
            self._owners.pop(forgotten, None)
