"""A worker's job metrics, scraped from its exporter as Prometheus would, on a real redis-server."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis
from saq.queue.redis import RedisQueue

from {{ cookiecutter.package_name }}.settings import Settings
from {{ cookiecutter.package_name }}.tasks.exporter import exporting
from {{ cookiecutter.package_name }}.tasks.queue import enqueue

from .processes import child, free_port, until
from .scrape import scraped
from .workers import TAKEN_BACK_WITHIN, worker, worker_environment

pytest_plugins = ["tests.redis_server"]

PREFIX = "{{ cookiecutter.package_name }}"

# One sample's value by its name and its `function` label.
Samples = dict[tuple[str, str], float]


async def scrape(port: int) -> Samples:
    """GET /metrics from 127.0.0.1:`port`: the job metrics' samples (no buckets)."""
    figures = await scraped(f"http://127.0.0.1:{port}/metrics")
    return {
        (name, dict(labels)["function"]): count
        for (name, labels), count in figures.items()
        # The job metrics: a worker also counts, say, the job states it publishes.
        if name.startswith(f"{PREFIX}_job") and "le" not in dict(labels)
    }


def counts(samples: Samples, function: str) -> dict[str, float]:
    """The job metrics of `function`, by name without the prefix (durations by count only)."""
    return {
        name.removeprefix(f"{PREFIX}_"): value
        for (name, labelled), value in samples.items()
        if labelled == function and not name.endswith(("_created", "_sum"))
    }


@pytest.mark.anyio
@pytest.mark.workers
async def test_a_worker_serves_its_job_counts_running_jobs_and_durations(
    queue: RedisQueue, queue_settings: Settings, tmp_path: Path
) -> None:
    settings = queue_settings.model_copy(update={"job_retries": 1})
    port = free_port()
    redis: Redis = queue.redis
    gate = settings.redis_key("gate")
    variables = {"JOB_RETRIES": "1", "WORKER_METRICS_PORT": str(port)}
    seen: Samples = {}

    async def scraped(function: str, **expected: float) -> bool:
        seen.update(await scrape(port))
        found = counts(seen, function)
        return all(found.get(name) == value for name, value in expected.items())

    async with worker(settings, tmp_path, **variables) as running:
        assert f"worker metrics on http://127.0.0.1:{port}/metrics" in "\n".join(running.lines)
        await enqueue(queue, settings, "echo", owner=None, word="hi")
        await enqueue(queue, settings, "fail", owner=None)  # retried, then failed
        await enqueue(queue, settings, "fail", owner=None, succeed_on=2)  # retried, succeeds
        await enqueue(queue, settings, "gated", owner=None, gate=gate)
        await until(lambda: scraped("gated", jobs_running=1))
        held_from = time.monotonic()
        # A health check with the same settings, its worker's port taken: it listens on nothing.
        environment = worker_environment(settings, tmp_path / "ledger", **variables)
        package = "{{ cookiecutter.package_name }}"
        async with child(tmp_path, "-m", package, "worker", "--check", **environment) as check:
            assert await check.wait_exit() == 0, check.lines
        await until(lambda: scraped("fail", jobs_started_total=4, jobs_running=0))
        held = time.monotonic() - held_from
        await redis.rpush(gate, "go")
        await until(lambda: scraped("gated", jobs_succeeded_total=1))
    assert counts(seen, "echo") == {
        "jobs_started_total": 1,
        "jobs_succeeded_total": 1,
        "jobs_running": 0,
        "job_duration_seconds_count": 1,
    }
    assert counts(seen, "fail") == {
        "jobs_started_total": 4,
        "jobs_retried_total": 2,
        "jobs_failed_total": 1,
        "jobs_succeeded_total": 1,
        "jobs_running": 0,
        "job_duration_seconds_count": 4,
    }
    assert counts(seen, "gated") == {
        "jobs_started_total": 1,
        "jobs_succeeded_total": 1,
        "jobs_running": 0,
        "job_duration_seconds_count": 1,
    }
    # In seconds: the gated job ran at least as long as the test held its gate shut.
    assert seen[(f"{PREFIX}_job_duration_seconds_sum", "gated")] >= held


@pytest.mark.anyio
@pytest.mark.workers
async def test_the_worker_that_takes_a_lost_job_back_counts_its_attempt_retried(
    queue: RedisQueue, queue_settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    seen: Samples = {}

    async def scraped(**expected: float) -> bool:
        seen.update(await scrape(port))
        found = counts(seen, "effect")
        return all(found.get(name) == value for name, value in expected.items())

    async with worker(queue_settings, tmp_path, HANG="1") as victim:
        await enqueue(queue, queue_settings, "effect", owner=None, name="lost")
        await victim.wait_for("had its effect, now hangs")
        async with worker(queue_settings, tmp_path, WORKER_METRICS_PORT=str(port)):
            victim.send(signal.SIGKILL)
            # Its own worker died mid-attempt: the rescuer counts that attempt, then runs another.
            await until(lambda: scraped(jobs_succeeded_total=1), within=TAKEN_BACK_WITHIN + 10)
    assert counts(seen, "effect") == {
        "jobs_started_total": 1,
        "jobs_retried_total": 1,
        "jobs_succeeded_total": 1,
        "jobs_running": 0,
        "job_duration_seconds_count": 1,
    }


def test_the_exporter_is_off_at_port_0_or_with_metrics_disabled(settings: Settings) -> None:
    for off in ({"worker_metrics_port": 0}, {"metrics_enabled": False}):
        with exporting(settings.model_copy(update=off)) as port:
            assert port is None


def test_a_taken_worker_metrics_port_stops_the_worker_with_one_line(settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = settings.model_copy(update={"worker_metrics_port": port})
        with pytest.raises(SystemExit) as exited, exporting(busy):
            pass
    assert exited.value.code == (
        f"error: WORKER_METRICS_PORT: cannot listen on 127.0.0.1:{port} (Address already in use)"
    )


@pytest.mark.anyio
async def test_a_prometheus_multiproc_dir_a_worker_cannot_use_stops_it_with_one_line(
    queue_settings: Settings, tmp_path: Path
) -> None:
    package = "{{ cookiecutter.package_name }}"
    a_file = tmp_path / "a-file"
    a_file.touch()
    for chosen in (tmp_path / "missing", a_file):
        environment = worker_environment(
            queue_settings, tmp_path / "ledger", PROMETHEUS_MULTIPROC_DIR=str(chosen)
        )
        async with child(tmp_path, "-m", package, "worker", **environment) as running:
            assert await running.wait_exit() == 1
        expected = f"error: PROMETHEUS_MULTIPROC_DIR: {str(chosen)!r} is not a directory"
        assert running.lines == [expected]
