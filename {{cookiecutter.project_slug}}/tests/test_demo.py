"""The demo page: served without a build step, and working in a real headless Chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator

import httpx2
import pytest
from playwright.async_api import Browser, Page, async_playwright

from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings

from .live import WAIT, Live, serve

pytestmark = pytest.mark.anyio

# The system's Chromium, not one Playwright downloads: CHROMIUM_PATH overrides.
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def live() -> AsyncIterator[Live]:
    async with serve(create_app(Settings(_env_file=None))) as live:
        yield live


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install it (Debian/Ubuntu: `apt-get install chromium`)"
            " or set CHROMIUM_PATH to a Chromium or Chrome binary"
        )
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def test_the_demo_page_is_served_whole_with_nothing_from_elsewhere(live: Live) -> None:
    async with httpx2.AsyncClient(base_url=live.http(""), timeout=WAIT) as http:
        response = await http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "new WebSocket(" in page
    # Works offline: no script, style or font from another host.
    assert "http://" not in page
    assert "https://" not in page


async def open_demo(browser: Browser, live: Live, channel: str) -> Page:
    page = await browser.new_page()
    page.set_default_timeout(WAIT * 1000)
    await page.goto(live.http("/"))
    await page.fill("#channel", channel)
    await page.click("#join")
    await page.locator("#status.live").wait_for()
    return page


@pytest.mark.browser
async def test_two_pages_on_one_channel_see_each_others_messages(
    live: Live, browser: Browser
) -> None:
    alice = await open_demo(browser, live, "demo-room")
    bob = await open_demo(browser, live, "demo-room")
    await alice.fill("#message", "hello from alice")
    await alice.click("#send")
    await bob.locator("#log li", has_text="hello from alice").wait_for()
    await alice.locator("#log li.mine", has_text="hello from alice").wait_for()
    await bob.fill("#message", "hi alice")
    await bob.press("#message", "Enter")
    await alice.locator("#log li", has_text="hi alice").wait_for()
