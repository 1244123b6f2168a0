"""Background jobs and channels together: a delivered notification is announced live."""

from __future__ import annotations

import httpx2
import pytest
from websockets.asyncio.client import connect

from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings

from .live import WAIT, joined, receive, serve

pytestmark = pytest.mark.anyio


async def test_watchers_of_the_notifications_channel_see_each_delivery() -> None:
    async with (
        serve(create_app(Settings(_env_file=None))) as live,
        httpx2.AsyncClient(base_url=live.http(""), timeout=WAIT) as http,
        connect(live.ws("/ws")) as watcher,
    ):
        await joined(watcher, "notifications")
        body = {"recipient": "ada@example.com", "message": "your report is ready"}
        response = await http.post("/notifications", json=body)
        assert response.status_code == 202
        job_id = response.json()["job_id"]
        event = await receive(watcher)
        assert event["type"] == "message"
        assert event["sender"] == "notifications"
        assert event["data"] == {"event": "notification.delivered", "job_id": job_id}
        assert (await http.get(f"/jobs/{job_id}")).json()["state"] == "succeeded"
