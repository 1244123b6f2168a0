"""Fixtures for tests in a real headless Chromium, through Playwright.

`browser` is one Chromium per test module (a launch costs about a second);
`page` is a fresh page, in a context of its own, per test. The system's
Chromium is used, not one Playwright downloads: `/usr/bin/chromium`, or
CHROMIUM_PATH. Without one the tests fail saying how to get it: they never skip.

Load it from a test module with `pytest_plugins = ["tests.browser"]`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, async_playwright

from .live import WAIT

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


@pytest.fixture(scope="module")
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


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh page in a context of its own, closed after the test."""
    context = await browser.new_context()
    context.set_default_timeout(WAIT * 1000)
    try:
        yield await context.new_page()
    finally:
        await context.close()
