"""The demo page: served without a build step, and working in a real headless Chromium.

The browser tests drive the page as a user would (fill a token, connect,
subscribe, publish) against a real server with authentication on, and
check what the page shows against what a second client (a WebSocket client
or an HTTP publisher) sends and receives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.async_api import Page, expect
from starlette.types import ASGIApp, Receive, Scope, Send
from websockets.asyncio.client import connect

from {{ cookiecutter.package_name }}.auth.tokens import mint
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings

from .live import WAIT, Live, command, joined, receive, serve

pytest_plugins = ["tests.browser"]
pytestmark = pytest.mark.anyio

SECRET = "x" * 32
PACKAGE = create_app.__module__.split(".")[0]


def token(user: str, *, channels: list[str], publish: list[str]) -> str:
    return mint(SECRET, user, ttl=600, channels=channels, publish=publish)


@pytest.fixture(scope="module")
async def live() -> AsyncIterator[Live]:
    """A server with authentication on, shared by the module's tests (each on its own channels)."""
    async with serve(create_app(Settings(_env_file=None, auth_secret=SECRET))) as live:
        yield live


@pytest.fixture(scope="module")
async def limited() -> AsyncIterator[Live]:
    """A server with authentication on that allows two commands at once, then two a second."""
    settings = Settings(_env_file=None, auth_secret=SECRET, ws_rate=2, ws_burst=2)
    async with serve(create_app(settings)) as live:
        yield live


async def connected_page(page: Page, live: Live, token: str = "") -> Page:
    """`page` on the demo, connected with `token`."""
    await page.goto(live.http("/"))
    await page.fill("#token", token)
    await page.click("#connect")
    await page.locator("#status.live").wait_for()
    return page


async def subscribe(page: Page, channel: str) -> None:
    """Add `channel` on the page and wait until the server confirmed it."""
    await page.fill("#channel", channel)
    await page.click("#subscribe")
    await page.locator(f"{row(channel)}.subscribed").wait_for()


async def publish(page: Page, text: str) -> None:
    await page.fill("#message", text)
    await page.click("#send")


def row(channel: str) -> str:
    """The selector of `channel`'s entry in the page's channel list."""
    return f'#channels li[data-channel="{channel}"]'


def log(channel: str) -> str:
    """The selector of `channel`'s message log on the page."""
    return f'.log[data-channel="{channel}"]'


async def test_the_demo_page_is_served_whole_with_nothing_from_elsewhere(live: Live) -> None:
    async with httpx2.AsyncClient(base_url=live.http(""), timeout=WAIT) as http:
        response = await http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    # The page is a client of realtime.js, taken from beside it.
    assert 'import { RealtimeClient } from "./static/realtime.js";' in page
    # The server tells the page that authentication is on, and how to mint a token.
    assert '"auth": true' in page
    assert f"python -m {PACKAGE} token --sub alice" in page
    # Works offline: no script, style or font from another host.
    assert "http://" not in page
    assert "https://" not in page


def test_the_demo_page_is_not_served_when_the_demo_is_off() -> None:
    settings = Settings(_env_file=None, auth_secret=SECRET, demo_enabled=False)
    with TestClient(create_app(settings)) as client:
        assert client.get("/").status_code == 404


@pytest.mark.browser
async def test_one_page_connection_carries_two_channels_to_and_from_other_clients(
    live: Live, page: Page
) -> None:
    alice = token("alice", channels=["demo:*"], publish=["demo:*"])
    bob = token("bob", channels=["demo:*"], publish=["demo:*"])
    await connected_page(page, live, alice)
    await expect(page.locator("#status")).to_contain_text("alice")
    await subscribe(page, "demo:a")
    await subscribe(page, "demo:b")
    async with (
        connect(live.ws("/ws")) as ws,
        httpx2.AsyncClient(base_url=live.http(""), timeout=WAIT) as http,
    ):
        await joined(ws, "demo:b", token=bob)
        # demo:b is selected (the last added); a message on demo:a waits, counted.
        response = await http.post(
            "/channels/demo:a/messages",
            json={"text": "news for a"},
            headers={"Authorization": f"Bearer {bob}"},
        )
        assert response.status_code == 202
        await expect(page.locator(f"{row('demo:a')} .badge")).to_have_text("1 unread")
        await page.click(f"{row('demo:a')} button.channel")
        await page.locator(log("demo:a"), has_text="news for a").wait_for()

        # Whatever another client sends is shown as text, never as markup.
        sent = await command(ws, "publish", channel="demo:b", data={"text": "<b>hi</b> from bob"})
        assert sent["type"] == "reply", sent
        await page.click(f"{row('demo:b')} button.channel")
        await page.locator(f"{log('demo:b')} li", has_text="<b>hi</b> from bob").wait_for()
        await expect(page.locator(f"{log('demo:b')} b")).to_have_count(0)
        await expect(page.locator(f"{log('demo:a')} li", has_text="bob")).to_have_count(0)

        await publish(page, "hello from the page")
        envelope = await receive(ws)
        assert envelope["type"] == "message", envelope
        assert envelope["channel"] == "demo:b"
        assert envelope["data"] == {"text": "hello from the page"}
        await page.locator(f"{log('demo:b')} li.mine", has_text="hello from the page").wait_for()


@pytest.mark.browser
async def test_a_channel_the_token_may_not_subscribe_to_shows_forbidden(
    live: Live, page: Page
) -> None:
    await connected_page(page, live, token("carol", channels=["open:*"], publish=[]))
    await page.fill("#channel", "secret:plans")
    await page.click("#subscribe")
    error = page.locator("#channel-error")
    await expect(error).to_contain_text("forbidden")
    await expect(error).to_contain_text("secret:plans")
    await expect(page.locator(row("secret:plans"))).to_have_count(0)


@pytest.mark.browser
async def test_a_publish_the_token_may_not_make_shows_forbidden(live: Live, page: Page) -> None:
    await connected_page(page, live, token("dave", channels=["readonly:*"], publish=[]))
    await subscribe(page, "readonly:news")
    await publish(page, "may I?")
    error = page.locator("#publish-error")
    await expect(error).to_contain_text("forbidden")
    await expect(error).to_contain_text("may I?")


@pytest.mark.browser
async def test_a_refused_token_closes_with_4001_and_the_page_asks_for_a_new_one(
    live: Live, page: Page
) -> None:
    forged = mint("y" * 32, "mallory", ttl=600, channels=["*"], publish=["*"])
    await page.goto(live.http("/"))
    await page.fill("#token", forged)
    await page.click("#connect")
    await expect(page.locator("#connection-error")).to_contain_text("4001")
    await expect(page.locator("#connection-error")).to_contain_text("new token")
    await expect(page.locator("#token")).to_have_attribute("aria-invalid", "true")
    # No reconnect is scheduled: the button offers to connect, not to reconnect.
    await expect(page.locator("#connect")).to_have_text("Connect")
    await expect(page.locator("#disconnect")).to_be_disabled()


@pytest.mark.browser
async def test_publishes_over_the_rate_limit_wait_their_turn_and_all_arrive(
    limited: Live, page: Page
) -> None:
    await connected_page(page, limited, token("erin", channels=["fast:*"], publish=["fast:*"]))
    await subscribe(page, "fast:one")  # the bucket's first command
    for n in range(1, 4):  # the second, then past the burst: paced by the welcome's rate
        await publish(page, f"message {n}")
    channel_log = page.locator(log("fast:one"))
    await channel_log.locator("li.mine", has_text="message 3").wait_for()
    mine = await channel_log.locator("li.mine").all_inner_texts()
    order = [n for text in mine for n in range(1, 4) if f"message {n}" in text]
    assert order == [1, 2, 3]
    await expect(page.locator("#publish-error")).to_have_text("")


@pytest.mark.browser
async def test_after_the_connection_is_lost_the_page_reconnects_and_recovers(
    live: Live, page: Page
) -> None:
    user = token("frank", channels=["again:*"], publish=["again:*"])
    await connected_page(page, live, user)
    await subscribe(page, "again:one")
    await publish(page, "before")
    channel_log = page.locator(log("again:one"))
    await channel_log.locator("li.mine", has_text="before").wait_for()
    # The network drops every connection (no close frame): the browser sees 1006.
    for connection in list(live.server.server_state.connections):
        connection.transport.close()
    await channel_log.locator("li.note", has_text="Connection lost (1006").wait_for()
    await channel_log.locator("li.note", has_text="Reconnected: recovered every message").wait_for()
    await page.locator("#status.live").wait_for()
    async with httpx2.AsyncClient(base_url=live.http(""), timeout=WAIT) as http:
        response = await http.post(
            "/channels/again:one/messages",
            json={"text": "after the reconnect"},
            headers={"Authorization": f"Bearer {user}"},
        )
    assert response.status_code == 202
    await channel_log.locator("li", has_text="after the reconnect").wait_for()


@pytest.mark.browser
async def test_with_authentication_off_the_page_works_without_a_token(page: Page) -> None:
    async with serve(create_app(Settings(_env_file=None))) as live:
        await page.goto(live.http("/"))
        await expect(page.locator("#token-help")).to_contain_text("no token needed")
        await connected_page(page, live)
        await expect(page.locator("#status")).to_contain_text("authentication is off")
        await subscribe(page, "open:lobby")
        await publish(page, "hello, anyone")
        await page.locator(f"{log('open:lobby')} li.mine", has_text="hello, anyone").wait_for()


class BehindAStrippingProxy:
    """The app as a proxy that strips `prefix` (Traefik's StripPrefix, Caddy's
    handle_path) and uvicorn with ROOT_PATH=`prefix` make it: `/realtime` and
    `/realtime/` both reach the app as its root, with the prefix as root_path."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path: str = scope["path"]
            assert path == self.prefix or path.startswith(self.prefix + "/"), path
            # uvicorn puts root_path in front of the path it is given, here "/".
            path = self.prefix + (path[len(self.prefix) :] or "/")
            scope = {**scope, "path": path, "raw_path": path.encode(), "root_path": self.prefix}
        await self.app(scope, receive, send)


@pytest.mark.browser
@pytest.mark.parametrize("opened_at", ["/realtime", "/realtime/"])
async def test_behind_a_proxy_that_strips_the_prefix_the_page_connects_below_it(
    page: Page, opened_at: str
) -> None:
    app = create_app(Settings(_env_file=None, root_path="/realtime"))
    app.add_middleware(BehindAStrippingProxy, prefix="/realtime")
    async with serve(app) as live:
        await page.goto(live.http(opened_at))
        await page.click("#connect")
        await page.locator("#status.live").wait_for()
        await subscribe(page, "stripped")
        await publish(page, "below the prefix")
        await page.locator(f"{log('stripped')} li.mine", has_text="below the prefix").wait_for()


@pytest.mark.browser
async def test_under_a_proxys_path_prefix_the_page_connects_below_it(page: Page) -> None:
    # What a proxy's path prefix (ROOT_PATH) makes of the app: it is served below /realtime,
    # its scopes carrying the prefix as root_path; here a mount puts it there.
    outer = FastAPI()
    outer.mount("/realtime", create_app(Settings(_env_file=None)))
    async with serve(outer) as live:
        await page.goto(live.http("/realtime/"))
        await page.click("#connect")
        await page.locator("#status.live").wait_for()
        await subscribe(page, "prefixed")
        await publish(page, "below the prefix")
        await page.locator(f"{log('prefixed')} li.mine", has_text="below the prefix").wait_for()
