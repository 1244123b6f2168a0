"""Background jobs and channels together: a delivered notification is announced live."""

from __future__ import annotations

import threading
import time

import anyio.to_thread
import httpx2
import pytest
from websockets.asyncio.client import connect

from {{ cookiecutter.package_name }}.api import notifications
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings

from .live import WAIT, joined, receive, serve
from .scrape import samples, value

pytestmark = pytest.mark.anyio


async def test_watchers_of_the_notifications_channel_see_each_delivery() -> None:
    async with (
        serve(create_app(Settings(_env_file=None))) as live,
        httpx2.AsyncClient(base_url=live.http(""), timeout=WAIT) as http,
        connect(live.ws("/ws")) as watcher,
    ):
        await joined(watcher, "notifications")
        before = await published_by_jobs(http)
        body = {"recipient": "ada@example.com", "message": "your report is ready"}
        response = await http.post("/notifications", json=body)
        assert response.status_code == 202
        job_id = response.json()["job_id"]
        event = await receive(watcher)
        assert event["type"] == "message"
        assert event["sender"] == "notifications"
        assert event["data"] == {"event": "notification.delivered", "job_id": job_id}
        assert (await http.get(f"/jobs/{job_id}")).json()["state"] == "succeeded"
        assert await published_by_jobs(http) == before + 1


async def published_by_jobs(http: httpx2.AsyncClient) -> float:
    """What GET /metrics counts of messages published by jobs."""
    figures = samples((await http.get("/metrics")).text)
    return value(figures, "messages_published_total", via="job")


async def test_fan_out_goes_on_while_a_blocking_provider_sends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started, release = threading.Event(), threading.Event()

    def blocking(notification: notifications.Notification) -> None:
        started.set()
        release.wait(WAIT)

    monkeypatch.setattr(notifications, "send_with_provider", blocking)
    async with (
        serve(create_app(Settings(_env_file=None))) as live,
        httpx2.AsyncClient(base_url=live.http(""), timeout=WAIT) as http,
        connect(live.ws("/ws")) as watcher,
    ):
        await joined(watcher, "news")
        try:
            # The provider blocks for up to WAIT seconds; all this is done long before,
            # so it ran beside the event loop, not on it (which serves the test too).
            begun = time.monotonic()
            body = {"recipient": "ada@example.com", "message": "hi"}
            assert (await http.post("/notifications", json=body)).status_code == 202
            assert await anyio.to_thread.run_sync(started.wait, WAIT), "the provider never ran"
            assert (await http.get("/health")).status_code == 200
            assert (await http.post("/channels/news/messages", json="live")).status_code == 202
            assert (await receive(watcher))["data"] == "live"
            assert time.monotonic() - begun < WAIT / 2
            assert not release.is_set()
        finally:
            release.set()
