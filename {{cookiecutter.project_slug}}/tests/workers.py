"""Worker processes and a queue for the task-queue tests, all on the session's Redis.

Each test gets a REDIS_PREFIX of its own (`queue_settings`): its queue, its
jobs and its workers see nothing of another test's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from saq.queue.redis import RedisQueue

from {{ cookiecutter.package_name }}.settings import Settings
from {{ cookiecutter.package_name }}.tasks.queue import create_queue

from .processes import Child, child, environment

# The project folder, where `python -m tests.worker_jobs` finds the tests package.
PROJECT = Path(__file__).resolve().parent.parent

# Short, so that the tests which kill a worker stay short: the smallest allowed.
HEARTBEAT_TIMEOUT = 3
# The README's bound on running a killed worker's job again, in seconds.
TAKEN_BACK_WITHIN = 2 * HEARTBEAT_TIMEOUT + 5


@pytest.fixture
def queue_settings(redis_url: str) -> Settings:
    """Settings on the session's Redis under a prefix of this test's own."""
    return Settings(
        _env_file=None,
        redis_url=redis_url,
        redis_prefix=f"test-{uuid.uuid4().hex[:12]}",
        redis_timeout=1.0,
        job_heartbeat_timeout=HEARTBEAT_TIMEOUT,
        job_retry_delay=0.1,
        job_retry_max_delay=0.5,
    )


@pytest.fixture
async def queue(queue_settings: Settings) -> AsyncIterator[RedisQueue]:
    """The test's queue, connected."""
    opened = create_queue(queue_settings)
    await opened.connect()
    yield opened
    await opened.disconnect()


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
        "PYTHONPATH": os.pathsep.join((environment()["PYTHONPATH"], str(PROJECT))),
        **variables,
    }


@contextlib.asynccontextmanager
async def worker(settings: Settings, directory: Path, **variables: str) -> AsyncIterator[Child]:
    """A worker child (tests/worker_jobs.py) on `settings`' queue, once it takes jobs;
    killed after the block if still running. Its ledger is `directory`/ledger."""
    environment = worker_environment(settings, directory / "ledger", **variables)
    async with child(directory, "-m", "tests.worker_jobs", **environment) as started:
        await started.wait_for("taking jobs from")
        yield started


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
