"""The durable queue's promises, on a real redis-server with real worker processes.

At least once, nothing lost while no worker runs, retries then failure,
once-per-period schedules, a graceful stop, bounded Redis memory and a
health signal: each is watched from outside, as an operator would.
"""

from __future__ import annotations

import functools
import json
import re
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from redis.asyncio import Redis
from saq.queue.redis import RedisQueue
from saq.types import WorkerInfo

from {{ cookiecutter.package_name }}.settings import Settings
from {{ cookiecutter.package_name }}.tasks.engine import Queue
from {{ cookiecutter.package_name }}.tasks.queue import JobView, enqueue, find
from {{ cookiecutter.package_name }}.tasks.worker import healthy

from .processes import Child, child, until
from .workers import TAKEN_BACK_WITHIN, first_to_log, ledger, worker, worker_environment

if TYPE_CHECKING:  # imported at run time by pytest_plugins, which must come first
    from .redis_server import RedisServer

pytest_plugins = ["tests.redis_server"]
pytestmark = [pytest.mark.anyio, pytest.mark.workers]


async def state_of(queue: RedisQueue, job_id: str) -> JobView:
    job = await find(queue, job_id, owner=None)
    assert job is not None, f"job {job_id} is gone"
    return job


async def reaches(queue: RedisQueue, job_id: str, state: str, within: float = 30.0) -> JobView:
    """The job once it is in `state`; fails after `within` seconds."""

    async def there() -> bool:
        return (await state_of(queue, job_id)).state == state

    await until(there, within)
    return await state_of(queue, job_id)


async def gated_job_running(
    queue: RedisQueue, settings: Settings, running: Child
) -> tuple[str, str]:
    """A `gated` job's id once `running` runs it, and its gate: push to it to let it end."""
    gate = settings.redis_key("gate")
    job_id = await enqueue(queue, settings, "gated", owner=None, gate=gate)
    await running.wait_for(f"gated {job_id}: waiting")
    return job_id, gate


async def test_the_jobs_of_a_killed_worker_run_again_elsewhere_with_their_effect_once(
    queue: RedisQueue, queue_settings: Settings, tmp_path: Path
) -> None:
    names = [f"job{number}" for number in range(5)]
    redis: Redis = queue.redis
    # As many job slots as jobs: the victim, once they hang, takes no other.
    slots = {"WORKER_CONCURRENCY": str(len(names))}
    async with worker(queue_settings, tmp_path, HANG="1", **slots) as victim:
        jobs = [await enqueue(queue, queue_settings, "effect", owner=None, name=n) for n in names]
        # Each has had its effect and hangs: kill the worker as the OOM killer would.
        await victim.wait_for("had its effect, now hangs", count=len(jobs))
        async with worker(queue_settings, tmp_path) as rescuer:
            # A healthy job runs on the live worker all along: the sweeps must leave it be.
            healthy_job, gate = await gated_job_running(queue, queue_settings, rescuer)
            killed_at = time.monotonic()
            victim.send(signal.SIGKILL)
            done = [await reaches(queue, job_id, "succeeded", within=60) for job_id in jobs]
            taken_back = time.monotonic() - killed_at
            await redis.rpush(gate, "go")
            assert (await reaches(queue, healthy_job, "succeeded")).attempts == 1
    assert [(job.attempts, job.result) for job in done] == [(2, {"attempt": 2})] * len(jobs)
    # Run twice, effect once: each job checked its idempotency key.
    assert sorted(ledger(tmp_path)) == [f"effect {name}" for name in names]
    # The README's bound (2 x JOB_HEARTBEAT_TIMEOUT + 1 s, the retry delay, 0.2 s for each
    # other job lost), with 5 s of slack for a busy machine.
    assert taken_back < TAKEN_BACK_WITHIN + 0.2 * (len(jobs) - 1) + 5


async def test_jobs_queued_while_no_worker_runs_run_once_one_starts(
    queue: RedisQueue, queue_settings: Settings, tmp_path: Path
) -> None:
    jobs = [
        await enqueue(queue, queue_settings, "fail", owner=None, succeed_on=1) for _ in range(5)
    ]
    for job_id in jobs:
        assert (await state_of(queue, job_id)).state == "queued"
    async with worker(queue_settings, tmp_path):
        for job_id in jobs:
            job = await reaches(queue, job_id, "succeeded")
            assert (job.attempts, job.result) == (1, {"attempt": 1})


async def test_a_job_that_raises_is_retried_with_backoff_then_failed_with_its_error(
    queue: RedisQueue, queue_settings: Settings, tmp_path: Path
) -> None:
    settings = queue_settings.model_copy(update={"job_retries": 2})
    async with worker(settings, tmp_path, JOB_RETRIES="2") as running:
        job_id = await enqueue(queue, settings, "fail", owner=None)
        job = await reaches(queue, job_id, "failed")
        recovered = await enqueue(queue, settings, "fail", owner=None, succeed_on=2)
        assert (await reaches(queue, recovered, "succeeded")).attempts == 2
    assert job.attempts == 3
    assert job.error == "RuntimeError: boom on attempt 3"
    # Each of this service's lines names the job's function and id.
    attempts = [line for line in running.lines if f"job fail {job_id}: attempt" in line]
    context = f" [job_id={job_id}]"  # at the end of each line of the job
    assert all(line.endswith(context) for line in attempts), attempts
    shown = [re.sub(r".*: attempt", "attempt", line).removesuffix(context) for line in attempts]
    assert shown == [
        "attempt 1 of 3 started",
        "attempt 1 of 3 failed (RuntimeError: boom on attempt 1); it will run again",
        "attempt 2 of 3 started",
        "attempt 2 of 3 failed (RuntimeError: boom on attempt 2); it will run again",
        "attempt 3 of 3 started",
        "attempt 3 of 3 failed (RuntimeError: boom on attempt 3); no attempts left",
    ]


async def test_in_json_every_worker_line_is_one_object_with_the_id_of_its_job(
    queue: RedisQueue, queue_settings: Settings, tmp_path: Path
) -> None:
    settings = queue_settings.model_copy(update={"job_retries": 0})
    variables = {"JOB_RETRIES": "0", "LOG_FORMAT": "json", "LOG_LEVEL": "debug"}
    async with worker(settings, tmp_path, **variables) as running:
        failed = await enqueue(queue, settings, "fail", owner=None)
        await reaches(queue, failed, "failed")
        echoed = await enqueue(queue, settings, "echo", owner=None, x=1)
        await reaches(queue, echoed, "succeeded")
    objects = [json.loads(line) for line in running.lines]  # fails on any other line
    assert all(line.keys() >= {"time", "level", "logger", "message"} for line in objects)
    assert any(line["logger"] == "saq" for line in objects), objects  # SAQ's lines too
    for job_id in (failed, echoed):
        about = [line for line in objects if job_id in line["message"]]
        assert len(about) >= 3, objects  # started, SAQ's "Processing", the outcome
        assert all(line.get("job_id") == job_id for line in about), about
    [traceback] = [line["traceback"] for line in objects if "traceback" in line]
    assert "RuntimeError: boom on attempt 1" in traceback


async def test_a_periodic_job_runs_once_per_period_however_many_workers(
    queue_settings: Settings, tmp_path: Path
) -> None:
    every_second = {"QUEUE_REPORT_CRON": "* * * * * *"}
    async with (
        worker(queue_settings, tmp_path, **every_second) as first,
        worker(queue_settings, tmp_path, **every_second) as second,
    ):
        report = re.compile(r"queue report for (\d+):")

        def periods() -> list[str]:
            return [
                found[1]
                for w in (first, second)
                for line in w.lines
                if (found := report.search(line))
            ]

        while len(periods()) < 4:
            await first_to_log(report, first, second)
    seen = periods()
    assert len(seen) == len(set(seen)), f"a period ran twice: {seen}"


async def test_sigterm_lets_a_running_job_finish_and_takes_no_other(
    queue: RedisQueue, queue_settings: Settings, tmp_path: Path
) -> None:
    redis: Redis = queue.redis
    async with worker(queue_settings, tmp_path, WORKER_SHUTDOWN_TIMEOUT="20") as running:
        job_id, gate = await gated_job_running(queue, queue_settings, running)
        running.send(signal.SIGTERM)
        await running.wait_for("Working shutting down")  # SAQ's line: the stop has begun
        later = await enqueue(queue, queue_settings, "fail", owner=None, succeed_on=1)
        await redis.rpush(gate, "go")
        status = await running.wait_exit()
    assert status == 0
    assert (await state_of(queue, job_id)).state == "succeeded"
    # Queued after the stop began: left for the next worker.
    assert ((await state_of(queue, later)).state, (await state_of(queue, later)).attempts) == (
        "queued",
        0,
    )


async def test_a_job_still_running_when_the_shutdown_timeout_ends_runs_again_later(
    queue: RedisQueue, queue_settings: Settings, tmp_path: Path
) -> None:
    redis: Redis = queue.redis
    async with worker(queue_settings, tmp_path, WORKER_SHUTDOWN_TIMEOUT="1") as running:
        job_id, gate = await gated_job_running(queue, queue_settings, running)
        assert await running.stop() == 0
    job = await state_of(queue, job_id)
    assert (job.state, job.attempts) == ("queued", 1)
    async with worker(queue_settings, tmp_path):
        await redis.rpush(gate, "go")
        assert (await reaches(queue, job_id, "succeeded")).attempts == 2


async def test_finished_jobs_expire_and_the_queue_does_not_grow_with_them(
    queue: RedisQueue, queue_settings: Settings, tmp_path: Path
) -> None:
    settings = queue_settings.model_copy(update={"job_result_ttl": 1})
    redis: Redis = queue.redis

    async def keys() -> list[bytes]:
        return [key async for key in redis.scan_iter(match=f"*{settings.redis_key()}*")]

    async def forgotten(jobs: list[str]) -> bool:
        found = await keys()
        return not any(job_id.encode() in key for key in found for job_id in jobs)

    left: list[set[bytes]] = []
    # The jobs' progress channels (with WebSockets) keep their history HISTORY_TTL seconds.
    async with worker(settings, tmp_path, JOB_RESULT_TTL="1", HISTORY_TTL="1"):
        for batch in (10, 40):
            jobs = [
                await enqueue(queue, settings, "fail", owner=None, succeed_on=1)
                for _ in range(batch)
            ]
            for job_id in jobs:
                await reaches(queue, job_id, "succeeded")
            await until(functools.partial(forgotten, jobs))
            # The periodic job's runs are jobs of their own, one per period
            # (PERIODIC_RESULT_TTL), whatever ran besides: left out here.
            left.append({key for key in await keys() if b"cron:" not in key})
    # What stays is the queue's own bookkeeping (its lists, the worker's info):
    # the same after 10 jobs as after 50.
    assert left[0] == left[1]
    assert len(left[1]) < 10, left[1]


async def test_worker_check_says_whether_a_worker_of_this_host_is_alive(
    queue_settings: Settings, tmp_path: Path
) -> None:
    environment = worker_environment(queue_settings, tmp_path / "ledger")

    async def check() -> int:
        command = ("-m", "{{ cookiecutter.package_name }}", "worker", "--check")
        async with child(tmp_path, *command, **environment) as probe:
            return await probe.wait_exit()

    assert await check() == 1
    async with worker(queue_settings, tmp_path):
        assert await check() == 0


async def test_worker_check_with_a_wrong_redis_password_says_so_without_it(
    protected_redis_server: RedisServer, tmp_path: Path
) -> None:
    wrong = "wrong-password-0123456789abcdef"
    assert protected_redis_server.password is not None
    url = protected_redis_server.url.replace(protected_redis_server.password, wrong)
    command = ("-m", "{{ cookiecutter.package_name }}", "worker", "--check")
    async with child(tmp_path, *command, REDIS_URL=url) as probe:
        assert await probe.wait_exit() == 1
    assert probe.lines[-1].startswith("unhealthy: Redis did not answer: "), probe.lines
    assert not [line for line in probe.lines if wrong in line]


async def test_worker_without_redis_url_exits_with_one_line(tmp_path: Path) -> None:
    async with child(tmp_path, "-m", "{{ cookiecutter.package_name }}", "worker") as started:
        status = await started.wait_exit()
    assert status == 1
    assert started.lines == ["error: worker: REDIS_URL is not set (the job queue lives in Redis)"]


async def test_worker_check_counts_only_the_workers_of_this_host(
    queue: Queue, queue_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "web")

    async def alive(worker_id: str) -> None:
        # As a worker writes its info (SAQ 0.26's keys), without SAQ's deprecated SETEX.
        info: WorkerInfo = {"queue_key": queue.name, "stats": None, "metadata": None}
        key = queue.namespace(f"worker_info:{worker_id}")
        await queue.redis.set(key, json.dumps(info), ex=10)
        await queue.redis.zadd(queue.namespace("stats"), {key: (time.time() + 10) * 1000})

    await alive("web-2-77")  # host "web-2", not "web"
    assert not await healthy(queue_settings)
    await alive("web-99")
    assert await healthy(queue_settings)


@pytest.mark.parametrize(
    "cron",
    ["0 0 31 2 *", "* * * * * * *", "* * * *", "every minute", "61 * * * *"],
    ids=["never-comes", "seven-fields", "four-fields", "words", "out-of-range"],
)
def test_a_periodic_schedule_that_never_fires_is_refused_in_one_line(
    refusal: Callable[[str, str], str], cron: str
) -> None:
    assert "QUEUE_REPORT_CRON" in refusal("QUEUE_REPORT_CRON", cron)


async def test_a_jobs_arguments_reach_it_whatever_their_names(
    queue: RedisQueue, queue_settings: Settings, tmp_path: Path
) -> None:
    # Names SAQ's Job has as fields of its own: they are arguments here.
    arguments: dict[str, Any] = {"scheduled": 4102444800, "attempts": 7, "error": "e", "key": "k"}
    async with worker(queue_settings, tmp_path):
        job_id = await enqueue(queue, queue_settings, "echo", owner=None, **arguments)
        job = await reaches(queue, job_id, "succeeded")
    assert (job.result, job.attempts) == (arguments, 1)


async def test_a_worker_whose_job_was_taken_back_cannot_overwrite_it(
    queue: RedisQueue, queue_settings: Settings, tmp_path: Path
) -> None:
    # A worker alive but silent past the heartbeat timeout: its job is taken back and
    # run elsewhere; when it wakes, its heartbeat and outcome must not count.
    one_slot = {"WORKER_CONCURRENCY": "1"}
    async with worker(queue_settings, tmp_path, **one_slot) as stuck:
        job_id = await enqueue(queue, queue_settings, "blocky", owner=None, seconds=9)
        await stuck.wait_for(f"blocky {job_id}: blocking")
        async with worker(queue_settings, tmp_path):
            done = await reaches(queue, job_id, "succeeded", within=30)
            await stuck.wait_for(f"job blocky {job_id}: attempt 1's .* dropped")
    after = await state_of(queue, job_id)
    assert (done.attempts, done.result) == (2, {"attempt": 2})
    assert (after.state, after.attempts, after.result) == ("succeeded", 2, {"attempt": 2})
    # Still the record of a finished job: it expires.
    assert await queue.redis.ttl(queue.job_id(job_id)) > 0
    assert await queue.count("queued") == 0


async def test_a_job_cancelled_at_shutdown_with_no_attempts_left_fails(
    queue: RedisQueue, queue_settings: Settings, tmp_path: Path
) -> None:
    settings = queue_settings.model_copy(update={"job_retries": 0})
    options = {"WORKER_SHUTDOWN_TIMEOUT": "1", "JOB_RETRIES": "0"}
    async with worker(settings, tmp_path, **options) as running:
        job_id, _ = await gated_job_running(queue, settings, running)
        assert await running.stop() == 0
    job = await state_of(queue, job_id)
    assert (job.state, job.attempts) == ("failed", 1)
