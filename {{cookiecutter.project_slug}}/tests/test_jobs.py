from __future__ import annotations

import asyncio
import logging

import pytest

from {{ cookiecutter.package_name }}.jobs import JobRunner

pytestmark = pytest.mark.anyio


async def test_a_job_that_succeeds_is_recorded() -> None:
    jobs = JobRunner()
    done: list[str] = []

    async def job() -> None:
        done.append("sent")

    jobs.accept("a")
    assert jobs.state("a") == "pending"
    await jobs.run("a", "send", job)
    assert done == ["sent"]
    assert jobs.state("a") == "succeeded"


async def test_a_job_that_raises_is_logged_with_its_name_and_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    jobs = JobRunner()

    async def job() -> None:
        raise ConnectionError("smtp down")

    with caplog.at_level(logging.ERROR):
        await jobs.run("job-42", "send_notification", job)
    assert jobs.state("job-42") == "failed"
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "send_notification" in record.getMessage()
    assert "job-42" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ConnectionError)


async def test_drain_waits_for_a_running_job() -> None:
    jobs = JobRunner()
    started = asyncio.Event()
    release = asyncio.Event()

    async def job() -> None:
        started.set()
        await release.wait()

    task = asyncio.create_task(jobs.run("slow", "slow", job))
    await started.wait()
    drain = asyncio.create_task(jobs.drain(deadline=30))
    await asyncio.sleep(0)
    assert not drain.done()
    assert jobs.running == 1
    release.set()
    assert await drain is True
    await task
    assert jobs.state("slow") == "succeeded"


async def test_drain_gives_up_at_the_deadline_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    jobs = JobRunner()
    started = asyncio.Event()

    async def job() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(jobs.run("stuck", "stuck", job))
    await started.wait()
    with caplog.at_level(logging.WARNING):
        assert await jobs.drain(deadline=0.01) is False
    assert "1 job(s) still running" in caplog.text
    task.cancel()
    await task
    assert jobs.state("stuck") == "cancelled"


async def test_a_cancelled_job_ends_its_task_with_one_warning_and_nothing_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Its task is the request's, the response sent: what uvicorn cancels at shutdown.
    jobs = JobRunner()
    started = asyncio.Event()

    async def job() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(jobs.run("j1", "notify", job))
    await started.wait()
    with caplog.at_level(logging.DEBUG):
        task.cancel()
        await task  # raises nothing
    assert not task.cancelled()
    assert task.cancelling() == 0  # the cancellation was taken, not lost
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "job notify (j1) cancelled before it finished")
    ]
    assert jobs.state("j1") == "cancelled"
    assert jobs.running == 0


async def test_history_forgets_the_oldest_jobs_beyond_its_bound() -> None:
    jobs = JobRunner(history=2)
    for job_id in ("a", "b", "c"):
        jobs.accept(job_id)
    assert jobs.state("a") is None
    assert jobs.state("b") == "pending"
    assert jobs.state("c") == "pending"
