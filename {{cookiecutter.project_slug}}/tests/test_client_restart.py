"""The demo page, and realtime.js under it, through a restart of the process serving it.

One service process serves the page; a second one, on the same Redis, takes
the publishes. The first is restarted (SIGTERM, then started again on the
same port) while messages keep coming: the page must end with every message,
once, in order. realtime.js subscribes again from the last message it
delivered, and the service sends what the page missed from the channel's
history in Redis.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx2
import pytest
from playwright.async_api import Page, expect

from .live import WAIT
from .services import services

pytest_plugins = ["tests.redis_server", "tests.browser"]
pytestmark = [pytest.mark.anyio, pytest.mark.browser, pytest.mark.restart]

# Messages published, one every PACE seconds: the restart falls among them.
COUNT = 60
PACE = 0.05
# How long the page may take to come back: realtime.js waits up to its backoff
# (a random share of 0.5 s, 1 s, 2 s, ... by default) between attempts.
BACK_WAIT = 30.0


async def test_through_a_restart_of_its_server_the_page_shows_every_message_once_in_order(
    redis_url: str, tmp_path: Path, page: Page
) -> None:
    channel = f"restart-{uuid.uuid4().hex[:12]}"
    async with services(2, redis_url, tmp_path) as (serving, publishing):
        await page.goto(serving.http("/"))
        await page.click("#connect")
        await page.locator("#status.live").wait_for()
        await page.fill("#channel", channel)
        await page.click("#subscribe")
        await page.locator(f'#channels li[data-channel="{channel}"].subscribed').wait_for()

        restarting = False
        away: list[int] = []  # published while the serving process was stopping or starting
        a_third = asyncio.Event()

        async def publish() -> None:
            async with httpx2.AsyncClient(timeout=WAIT) as http:
                url = publishing.http(f"/channels/{channel}/messages")
                for n in range(1, COUNT + 1):
                    response = await http.post(url, json={"text": str(n)})
                    assert response.status_code == 202, response.text
                    if restarting:
                        away.append(n)
                    if n == COUNT // 3:
                        a_third.set()
                    await asyncio.sleep(PACE)  # a steady rate: pacing, not a wait for anything

        async with asyncio.TaskGroup() as group:
            group.create_task(publish())
            await a_third.wait()
            restarting = True
            await serving.restart()
            restarting = False

        channel_log = page.locator(f'.log[data-channel="{channel}"]')
        messages = channel_log.locator("li:not(.note)")
        await expect(messages).to_have_count(COUNT, timeout=BACK_WAIT * 1000)
        texts = await messages.evaluate_all("items => items.map((item) => item.firstChild.data)")
        offsets = await messages.evaluate_all("items => items.map((item) => item.dataset.offset)")
        assert texts == [str(n) for n in range(1, COUNT + 1)]
        assert offsets == [str(n) for n in range(1, COUNT + 1)]
        # The page was away while messages were published, and said what happened.
        assert away, "no message was published during the restart"
        notes = channel_log.locator("li.note")
        await expect(notes.filter(has_text="Connection lost (1012")).to_have_count(1)
        await expect(notes.filter(has_text="Reconnected: recovered every message")).to_have_count(1)
