"""A page watches a job finish: the worker publishes its state changes to `jobs:<id>`."""

from __future__ import annotations

from pathlib import Path

import pytest
from saq.queue.redis import RedisQueue
from websockets.asyncio.client import connect

from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings
from {{ cookiecutter.package_name }}.tasks.progress import job_channel
from {{ cookiecutter.package_name }}.tasks.queue import enqueue

from .live import joined, receive, serve
from .processes import free_port, until
from .scrape import scraped, value
from .workers import worker

pytest_plugins = ["tests.redis_server"]
pytestmark = pytest.mark.anyio


async def test_a_subscriber_sees_a_job_run_fail_retry_and_succeed(
    queue: RedisQueue, queue_settings: Settings, tmp_path: Path
) -> None:
    # Queued while no worker runs, so the page subscribes before anything happens.
    job_id = await enqueue(queue, queue_settings, "fail", owner=None, succeed_on=2)
    async with serve(create_app(queue_settings)) as live, connect(live.ws("/ws")) as page:
        await joined(page, job_channel(job_id))
        async with worker(queue_settings, tmp_path):
            events = [(await receive(page))["data"] for _ in range(4)]
    assert [(e["event"], e["job_id"], e["attempt"]) for e in events] == [
        ("job.running", job_id, 1),
        ("job.retrying", job_id, 1),
        ("job.running", job_id, 2),
        ("job.succeeded", job_id, 2),
    ]
    assert events[1]["error"] == "RuntimeError: boom on attempt 1"
    assert events[3]["result"] == {"attempt": 2}


async def test_a_worker_counts_the_job_states_it_publishes(
    queue: RedisQueue, queue_settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    async with worker(queue_settings, tmp_path, WORKER_METRICS_PORT=str(port)):
        await enqueue(queue, queue_settings, "fail", owner=None, succeed_on=1)

        async def published(count: float) -> bool:
            figures = await scraped(f"http://127.0.0.1:{port}/metrics")
            return value(figures, "messages_published_total", via="job") == count

        # job.running, then job.succeeded.
        await until(lambda: published(2))
