"""Worker processes for the task-queue tests, on the queue `queue_settings` names (conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

from {{ cookiecutter.package_name }}.settings import Settings

from .processes import Child, child, environment

# The project folder, where `python -m tests.worker_jobs` finds the tests package.
PROJECT = Path(__file__).resolve().parent.parent

# Short, so that the tests which kill a worker stay short: the smallest allowed.
HEARTBEAT_TIMEOUT = 3
# The README's bound on running a killed worker's job again, in seconds: twice
# the heartbeat timeout, a second for the schedule, the retry delay (0.5 s at most).
TAKEN_BACK_WITHIN = 2 * HEARTBEAT_TIMEOUT + 1 + 0.5


def worker_environment(settings: Settings, ledger: Path, **variables: str) -> dict[str, str]:
    """The variables a worker child needs to work on `settings`' queue; `variables` on top."""
    assert settings.redis_url is not None
    assert settings.redis_prefix is not None
    return {
        "REDIS_URL": settings.redis_url,
        "REDIS_PREFIX": settings.redis_prefix,
        "REDIS_TIMEOUT": str(settings.redis_timeout),
        "JOB_HEARTBEAT_TIMEOUT": str(settings.job_heartbeat_timeout),
        "JOB_RETRY_DELAY": str(settings.job_retry_delay),
        "JOB_RETRY_MAX_DELAY": str(settings.job_retry_max_delay),
        "LEDGER": str(ledger),
        "LOG_LEVEL": "info",
        # Several run at once: none serves metrics unless its test gives it a port.
        "WORKER_METRICS_PORT": "0",
        "PYTHONPATH": os.pathsep.join((environment()["PYTHONPATH"], str(PROJECT))),
        **variables,
    }


@contextlib.asynccontextmanager
async def worker(settings: Settings, directory: Path, **variables: str) -> AsyncIterator[Child]:
    """A worker child (tests/worker_jobs.py) on `settings`' queue, once it takes jobs;
    stopped after the block (SIGTERM) if still running, its log then read to
    the end. Its ledger is `directory`/ledger."""
    environment = worker_environment(settings, directory / "ledger", **variables)
    async with child(directory, "-m", "tests.worker_jobs", **environment) as started:
        await started.wait_for("taking jobs from")
        try:
            yield started
        finally:
            if started.running:
                await started.stop()
            # Captured: pytest shows it with a failure.
            print("\n".join(["worker log:", *started.lines]))


async def first_to_log(pattern: str | re.Pattern[str], *children: Child) -> Child:
    """The child that logs `pattern` first (each reads its stderr up to its next match)."""
    waits = {asyncio.create_task(c.wait_for(pattern)): c for c in children}
    done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for waiting in pending:
        waiting.cancel()
    if pending:
        await asyncio.wait(pending)
    first = next(iter(done))
    first.result()  # a child that ended or timed out fails the test here
    return waits[first]


def ledger(directory: Path) -> list[str]:
    """The effects the workers of `directory` had, in order."""
    path = directory / "ledger"
    return path.read_text().splitlines() if path.exists() else []
