"""Break12 finding in realtime.js (issue 12): a page with many channels after a reconnect.

Copy into a bake's `tests/` (package `realtime_service`, any combination with
WebSockets); it fails on main at 18757e8. Needs Chromium, as tests/test_browser_client.py.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from playwright.async_api import Page

from realtime_service.main import create_app
from realtime_service.settings import Settings

from .live import WAIT, serve

pytest_plugins = ["tests.browser"]
pytestmark = [pytest.mark.anyio, pytest.mark.browser]

# As many channels as one connection may hold by default (WS_MAX_SUBSCRIPTIONS), which
# is more than one burst of commands (WS_BURST, 100).
CHANNELS = 128
# How long the page is watched after the restart, in seconds: realtime.js's first
# retries wait at most 0.5 s, 1 s, 2 s.
WATCH = 8.0

START = """async (count) => {
  const { RealtimeClient } = await import("./static/realtime.js");
  window.seen = [];
  window.client = new RealtimeClient({
    onStatus: (status) => seen.push({ kind: "status", ...status }),
    onEvent: (event) => seen.push({ kind: "event", ...event }),
  });
  // Subscribed as a page does over time: in two batches a second apart, within WS_RATE.
  const names = Array.from({ length: count }, (_, i) => `room-${i}`);
  const outcome = (c) => client.subscribe(c, () => {}).then(() => "ok", (e) => e.code);
  const first = await Promise.all(names.slice(0, 90).map(outcome));
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const second = await Promise.all(names.slice(90).map(outcome));
  return [...first, ...second];
}"""


def app_with_page() -> FastAPI:
    """The service, serving an empty page of its own origin for the library to load in."""
    app = create_app(Settings(_env_file=None))

    async def blank() -> HTMLResponse:
        return HTMLResponse("<!doctype html><title>blank</title>")

    app.add_api_route("/blank.html", blank, include_in_schema=False)
    return app


async def test_a_page_with_as_many_channels_as_allowed_comes_back_after_a_restart(
    page: Page,
) -> None:
    # After a reconnect realtime.js resubscribes every channel at once. Past WS_BURST
    # the server refuses them (`rate_limited`) and, WS_MAX_BAD_FRAMES in a row later,
    # closes with 4029; the welcome has just reset the backoff, so the client is back
    # within 0.5 s and does the same again: a reconnect loop that never ends (about 3
    # connections and 400 commands a second per page), and the page never gets its
    # channels back. The first connection, subscribing the same channels in two
    # batches, is fine.
    async with serve(app_with_page()) as live:
        port = live.port
        await page.goto(live.http("/blank.html"))
        async with asyncio.timeout(WAIT):
            outcomes = await page.evaluate(START, CHANNELS)
        assert Counter(outcomes) == {"ok": CHANNELS}
        await page.evaluate("seen.length = 0")
    # The service restarts on the same port (its clients were closed with 1012).
    async with serve(app_with_page(), port=port):
        await asyncio.sleep(WATCH)  # watching what the page does meanwhile
        seen: list[dict[str, Any]] = await page.evaluate("seen")
    statuses = [s for s in seen if s["kind"] == "status"]
    closes = Counter(s["code"] for s in statuses if s["state"] == "closed")
    welcomes = sum(s["state"] == "open" for s in statuses)
    assert closes[4029] == 0, f"{closes[4029]} closes with 4029, {welcomes} welcomes in {WATCH}s"
    assert welcomes == 1, closes
