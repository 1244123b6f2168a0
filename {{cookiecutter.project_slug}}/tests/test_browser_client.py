"""realtime.js, the browser client, served by the service and run in a real headless Chromium.

Each browser test loads the library into a page of the server's origin, as
a team's page would (`import ... from "./static/realtime.js"`), drives it
with `page.evaluate`, and checks what it reports (statuses and events, in
order, in `window.seen`) and what it delivers (`window.got`). The service
broadcasts in memory here; tests/test_client_restart.py restarts a service
process that broadcasts through Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient
from playwright.async_api import Page

from {{ cookiecutter.package_name }}.auth.tokens import mint
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings

from .live import WAIT, Live, serve

pytest_plugins = ["tests.browser"]
pytestmark = pytest.mark.anyio

SECRET = "x" * 32

# Loads the library and starts a client. getToken hands out `tokens` in turn
# (the last one again and again) and records why it was asked. The client
# subscribes to the `early` channels at once, before its welcome.
START = """async ({ tokens, backoff, url, early }) => {
  const { RealtimeClient } = await import("./static/realtime.js");
  window.seen = [];
  window.got = [];
  window.tokensFor = [];
  const left = [...tokens];
  window.client = new RealtimeClient({
    url: url ?? undefined,
    getToken: async ({ reason }) => {
      tokensFor.push(reason);
      return left.length > 1 ? left.shift() : left[0];
    },
    onStatus: (status) => seen.push({ kind: "status", ...status }),
    onEvent: (event) => seen.push({ kind: "event", ...event }),
    backoff,
  });
  window.deliver = (message) => got.push(message);
  // A command's promise, settled as data: {ok: value} or {error: {name, code, reason}}.
  window.outcome = (promise) => promise.then(
    (value) => ({ ok: value }),
    (error) => ({ error: { name: error.name, code: error.code, reason: error.reason } }),
  );
  window.early = Promise.all(early.map((channel) => outcome(client.subscribe(channel, deliver))));
  return client.state;
}"""


def token(user: str, *, ttl: float = 600, channels: list[str], publish: list[str]) -> str:
    return mint(SECRET, user, ttl=ttl, channels=channels, publish=publish)


def with_page(app: FastAPI) -> FastAPI:
    """`app`, serving an empty page at /blank.html, as a team's own page would be served.

    A page of the service's own origin, as a browser sees it: Chromium blocks
    a page that Playwright makes up (`page.route`) from connecting to a
    loopback address (Local Network Access).
    """

    async def blank() -> HTMLResponse:
        return HTMLResponse("<!doctype html><title>blank</title>")

    app.add_api_route("/blank.html", blank, include_in_schema=False)
    return app


@pytest.fixture(scope="module")
async def live() -> AsyncIterator[Live]:
    """A server with authentication on, shared by the module's tests (each on its own channels)."""
    async with serve(with_page(create_app(Settings(_env_file=None, auth_secret=SECRET)))) as live:
        yield live


async def started(
    page: Page,
    live: Live,
    *tokens: str | None,
    backoff: dict[str, int] | None = None,
    url: str | None = None,
    early: tuple[str, ...] = (),
) -> str:
    """`page` on `live`'s empty page (`with_page`), with a client connecting with `tokens`;
    the client's state once started."""
    await page.goto(live.http("/blank.html"))
    options = {"tokens": list(tokens), "backoff": backoff or {}, "url": url, "early": early}
    state: str = await run(page, START, options)
    return state


async def run(page: Page, script: str, arg: Any = None) -> Any:
    """What `script` evaluates to in the page, once its promise settles, within WAIT seconds."""
    async with asyncio.timeout(WAIT):
        return await page.evaluate(script, arg)


async def statuses(page: Page) -> list[dict[str, Any]]:
    """What onStatus heard, in order."""
    seen: list[dict[str, Any]] = await run(page, "seen.filter((s) => s.kind === 'status')")
    return seen


async def events(page: Page) -> list[dict[str, Any]]:
    """What onEvent heard, in order."""
    seen: list[dict[str, Any]] = await run(page, "seen.filter((s) => s.kind === 'event')")
    return seen


# --- Served by the service ----------------------------------------------------


def test_the_library_is_served_as_javascript_revalidated_at_every_use_with_the_demo_off() -> None:
    settings = Settings(_env_file=None, auth_secret=SECRET, demo_enabled=False)
    with TestClient(create_app(settings)) as client:
        assert client.get("/").status_code == 404
        response = client.get("/static/realtime.js")
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/javascript; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["access-control-allow-origin"] == "*"
        assert "export class RealtimeClient" in response.text
        # No dependencies: no import statement or dynamic import() outside its comments.
        assert not re.search(r"^\s*import\b|\bimport\(", response.text, re.MULTILINE)
        etag = response.headers["etag"]
        assert etag.startswith('"')
        for current in (etag, f"W/{etag}", f'"older", {etag}', "*"):
            cached = client.get("/static/realtime.js", headers={"If-None-Match": current})
            assert cached.status_code == 304, current
            assert cached.content == b""
            assert cached.headers["etag"] == etag
        for stale in ('"older"', 'W/"older"', etag[:-2] + '"'):
            fresh = client.get("/static/realtime.js", headers={"If-None-Match": stale})
            assert fresh.status_code == 200, stale
            assert fresh.content == response.content


# --- Commands -------------------------------------------------------------------


@pytest.mark.browser
async def test_subscribe_and_publish_resolve_with_positions_and_messages_arrive_in_order(
    live: Live, page: Page
) -> None:
    alice = token("alice", channels=["order:*"], publish=["order:*"])
    # Subscribes called before the welcome wait for the connection, then are sent.
    assert await started(page, live, alice, early=("order:a", "order:b")) == "connecting"
    a, b = await run(page, "early")
    epoch = a["ok"]["epoch"]
    assert a == {"ok": {"channel": "order:a", "offset": 0, "epoch": epoch}}
    assert b["ok"]["offset"] == 0
    assert isinstance(epoch, str)
    assert epoch

    positions = await run(
        page, "Promise.all([1, 2, 3].map((n) => client.publish('order:a', { n })))"
    )
    assert positions == [{"offset": n, "epoch": epoch} for n in (1, 2, 3)]
    async with httpx2.AsyncClient(base_url=live.http(""), timeout=WAIT) as http:
        response = await http.post(
            "/channels/order:a/messages",
            json={"from": "http"},
            headers={"Authorization": f"Bearer {alice}"},
        )
        assert response.status_code == 202
        await page.wait_for_function("got.length === 4")

        # Unsubscribed: nothing more of order:a, while order:b still arrives.
        left = await run(page, "client.unsubscribe('order:a')")
        assert left == {"channel": "order:a"}
        for channel in ("order:a", "order:b"):
            response = await http.post(
                f"/channels/{channel}/messages",
                json={"on": channel},
                headers={"Authorization": f"Bearer {alice}"},
            )
            assert response.status_code == 202
        await page.wait_for_function("got.length === 5")

    got = await run(page, "got")
    me = await run(page, "client.welcome.client")
    assert [m["data"] for m in got] == [
        {"n": 1},
        {"n": 2},
        {"n": 3},
        {"from": "http"},
        {"on": "order:b"},
    ]
    assert [(m["channel"], m["offset"]) for m in got] == [
        *[("order:a", n) for n in (1, 2, 3, 4)],
        ("order:b", 1),
    ]
    assert [m["sender"] for m in got] == [me, me, me, "http", "http"]
    assert {m["epoch"] for m in got[:4]} == {epoch}
    fields = {"channel", "offset", "epoch", "origin", "sender", "ts", "data"}
    assert all(set(m) == fields for m in got)


@pytest.mark.browser
async def test_a_refused_command_rejects_with_the_servers_code_and_the_connection_stays(
    live: Live, page: Page
) -> None:
    await started(page, live, token("bob", channels=["mine:*"], publish=["mine:*"]))
    answers = await run(
        page,
        """async () => ({
          forbidden: await outcome(client.subscribe("theirs:a", deliver)),
          badChannel: await outcome(client.subscribe("no spaces", deliver)),
          publishForbidden: await outcome(client.publish("theirs:a", 1)),
          first: await outcome(client.subscribe("mine:a", deliver)),
          twice: await outcome(client.subscribe("mine:a", deliver)),
          tooLarge: await outcome(client.publish("mine:a", "x".repeat(70000))),
          state: client.state,
          afterwards: await outcome(client.publish("mine:a", "still connected")),
          // A refused subscribe leaves nothing behind: the same name may be tried again.
          again: await outcome(client.subscribe("theirs:a", deliver)),
        })""",
    )
    codes = {
        "forbidden": "forbidden",
        "badChannel": "bad_channel",
        "publishForbidden": "forbidden",
        "twice": "already_subscribed",
        "tooLarge": "too_large",
        "again": "forbidden",
    }
    for name, code in codes.items():
        error = answers[name]["error"]
        assert (error["name"], error["code"]) == ("RealtimeError", code), (name, error)
        assert error["reason"], name
    assert "ok" in answers["first"]
    assert answers["state"] == "open"
    assert answers["afterwards"]["ok"]["offset"] == 1
    assert [s["state"] for s in await statuses(page)] == ["connecting", "open"]


@pytest.mark.browser
async def test_a_url_no_websocket_can_open_stops_the_client_with_an_error(
    live: Live, page: Page
) -> None:
    await started(page, live, None, url="ftp://127.0.0.1/ws")
    await page.wait_for_function("client.state === 'closed'")
    [error] = await events(page)
    assert (error["type"], error["code"]) == ("error", "bad_url")
    *_, closed = await statuses(page)
    assert (closed["state"], closed["reconnect"]) == ("closed", False)
    assert "ftp://127.0.0.1/ws" in closed["reason"]


# --- Closes and reconnects --------------------------------------------------------


@pytest.mark.browser
async def test_after_a_4008_close_the_client_stops_for_good(live: Live, page: Page) -> None:
    await started(page, live, token("carol", channels=["x:*"], publish=["x:*"]))
    # A publish without data is a bad frame: WS_MAX_BAD_FRAMES (5) in a row close with 4008.
    answers = await run(
        page,
        """async () => {
          const answers = [];
          for (let n = 0; n < 5; n++) answers.push(await outcome(client.publish("x:a", undefined)));
          return answers;
        }""",
    )
    assert [a["error"]["code"] for a in answers] == ["bad_frame"] * 4 + ["disconnected"]
    await page.wait_for_function("client.state === 'closed'")
    # Stopping is decided in the close handler: had a reconnect been planned, it would show.
    *_, last = await statuses(page)
    assert last == {
        "kind": "status",
        "state": "closed",
        "code": 4008,
        "reason": "5 bad frames",
        "reconnect": False,
    }
    assert "reconnecting" not in [s["state"] for s in await statuses(page)]
    assert await run(page, "tokensFor") == ["connect"]
    later = await run(page, "outcome(client.subscribe('x:b', deliver))")
    assert later["error"]["code"] == "closed"


@pytest.mark.browser
async def test_after_a_4001_close_the_client_asks_for_a_new_token_then_reconnects(
    live: Live, page: Page
) -> None:
    forged = mint("y" * 32, "mallory", ttl=600, channels=["*"], publish=["*"])
    good = token("dave", channels=["d:*"], publish=["d:*"])
    await started(page, live, forged, good, backoff={"initial": 50, "max": 100})
    await page.wait_for_function("client.state === 'open'")
    assert await run(page, "tokensFor") == ["connect", "unauthorized"]
    seen = await statuses(page)
    assert [(s["state"], s.get("code"), s.get("attempt")) for s in seen] == [
        ("connecting", None, 0),
        ("closed", 4001, None),
        ("reconnecting", None, 1),
        ("connecting", None, 1),
        ("open", None, None),
    ]
    assert seen[-1]["user"] == "dave"


@pytest.mark.browser
async def test_the_token_is_refreshed_before_it_expires_and_the_connection_outlives_it(
    live: Live, page: Page
) -> None:
    short = token("erin", ttl=2, channels=["e:*"], publish=["e:*"])
    long = token("erin", channels=["e:*"], publish=["e:*"])
    await started(page, live, short, long)
    await page.wait_for_function("seen.some((e) => e.type === 'refreshed')")
    assert await run(page, "tokensFor") == ["connect", "refresh"]
    opened, *_ = [s for s in await statuses(page) if s["state"] == "open"]
    [refreshed] = [e for e in await events(page) if e["type"] == "refreshed"]
    assert refreshed["expiresAt"] > opened["expiresAt"]
    # The server would have closed with 4001 at the first token's expiry: wait for it to pass.
    await page.wait_for_function(f"Date.now() > {opened['expiresAt'] * 1000 + 200}")
    answer = await run(page, "outcome(client.publish('e:a', 'after the first expiry'))")
    assert answer["ok"]["offset"] == 1
    assert [s["state"] for s in await statuses(page)] == ["connecting", "open"]


@pytest.mark.browser
async def test_reconnects_back_off_with_full_jitter_to_the_bound_and_start_over_after_a_welcome(
    page: Page,
) -> None:
    settings = Settings(_env_file=None)
    async with serve(with_page(create_app(settings))) as first:
        port = first.port
        await started(page, first, None, backoff={"initial": 40, "max": 160})
        # The jitter's draw, fixed: every wait is half its ceiling.
        await run(page, "Math.random = () => 0.5")
        subscribed = await run(page, "outcome(client.subscribe('back:a', deliver))")
        before = subscribed["ok"]
    # The server is gone: every attempt fails, and waits longer, up to the bound.
    await page.wait_for_function("seen.filter((s) => s.state === 'reconnecting').length >= 5")
    async with serve(create_app(settings), port=port):
        await page.wait_for_function("seen.some((e) => e.type === 'resync')")
    await page.wait_for_function("seen.at(-1).state === 'reconnecting'")

    seen = await statuses(page)
    opened = [i for i, s in enumerate(seen) if s["state"] == "open"]
    assert len(opened) == 2
    waits = [s["delay"] for s in seen[opened[0] : opened[1]] if s["state"] == "reconnecting"]
    assert waits[:5] == [20, 40, 80, 80, 80]
    assert set(waits[5:]) <= {80}
    after = [s["delay"] for s in seen[opened[1] :] if s["state"] == "reconnecting"]
    assert after[0] == 20
    # In memory, the restart lost the channel's history: a new epoch, from its start.
    [resync] = await events(page)
    assert resync["type"] == "resync"
    assert resync["channel"] == "back:a"
    assert resync["position"]["offset"] == 0
    assert resync["position"]["epoch"] != before["epoch"]


# --- Positions: recovery, resync, duplicates; refusals after a reconnect -------------
#
# Against a stand-in for the service, scripted to do what the service never
# does (repeat messages, send them out of order) or seldom does (refuse a
# subscribe after a reconnect), connection by connection.

Script = Callable[[WebSocket], Awaitable[None]]


def stand_in(*scripts: Script) -> FastAPI:
    """An app whose `/ws` welcomes each connection, then plays the next of `scripts` on it."""
    app = FastAPI()
    next_script = iter(scripts)
    welcome = {"type": "welcome", "client": "c", "user": None, "expires_at": None, "origin": "o"}

    @app.websocket("/ws")
    async def play(websocket: WebSocket) -> None:
        script = next(next_script)
        await websocket.accept()
        await websocket.receive_json()  # connect
        await websocket.send_json(welcome | {"max_message_size": 65536, "max_subscriptions": 8})
        with contextlib.suppress(WebSocketDisconnect):
            await script(websocket)

    return app


async def held_open(websocket: WebSocket) -> None:
    """Keep the connection open until the stand-in stops.

    The server closes it, not the page: uvicorn (0.54) fails its shutdown
    when a client's close frame is still being answered.
    """
    await websocket.receive_json()


def message(channel: str, offset: int, epoch: str) -> dict[str, Any]:
    data = {"at": [offset, epoch]}
    fields = {"origin": "o", "sender": "s", "ts": "2025-01-31T12:00:00.000Z", "data": data}
    return {"type": "message", "channel": channel, "offset": offset, "epoch": epoch} | fields


def reply(command: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"type": "reply", "id": command["id"], "channel": command["channel"]} | fields


def refusal(command: dict[str, Any], code: str) -> dict[str, Any]:
    return {"type": "error", "id": command["id"], "code": code, "reason": f"said {code}"}


@pytest.mark.browser
async def test_each_message_is_delivered_once_and_a_reconnect_resumes_from_the_last_one(
    live: Live, page: Page
) -> None:
    subscribes: list[dict[str, Any]] = []

    async def first(websocket: WebSocket) -> None:
        subscribes.append(subscribe := await websocket.receive_json())
        await websocket.send_json(reply(subscribe, offset=0, epoch="e1"))
        for offset in (1, 2, 2, 1, 3):
            await websocket.send_json(message("c", offset, "e1"))
        resync = {"type": "resync", "channel": "c", "offset": 7, "epoch": "e2"}
        await websocket.send_json(resync | {"origin": "o", "reason": "test"})
        for offset in (8, 8, 9):
            await websocket.send_json(message("c", offset, "e2"))
        await websocket.close(1012)

    async def second(websocket: WebSocket) -> None:
        subscribes.append(subscribe := await websocket.receive_json())
        await websocket.send_json(reply(subscribe, offset=10, epoch="e2", recovered=True))
        for offset in (10, 9, 10, 11):
            await websocket.send_json(message("c", offset, "e2"))
        await held_open(websocket)

    async with serve(stand_in(first, second)) as service:
        await started(page, live, None, url=service.ws("/ws"), backoff={"initial": 10, "max": 10})
        subscribed = await run(page, "outcome(client.subscribe('c', deliver))")
        assert subscribed == {"ok": {"channel": "c", "offset": 0, "epoch": "e1"}}
        # The last message the stand-in sends: whatever came before it was handled.
        await page.wait_for_function("got.some((m) => m.offset === 11)")
        got = await run(page, "got")
        seen = await events(page)
    assert [m["data"]["at"] for m in got] == [
        [1, "e1"],
        [2, "e1"],
        [3, "e1"],
        [8, "e2"],
        [9, "e2"],
        [10, "e2"],
        [11, "e2"],
    ]
    assert seen == [
        {
            "kind": "event",
            "type": "resync",
            "channel": "c",
            "position": {"offset": 7, "epoch": "e2"},
            "reason": "test",
        },
        {
            "kind": "event",
            "type": "recovered",
            "channel": "c",
            "position": {"offset": 9, "epoch": "e2"},
        },
    ]
    # Subscribed again from the last message delivered.
    assert [s.get("since") for s in subscribes] == [None, {"offset": 9, "epoch": "e2"}]


@pytest.mark.browser
async def test_after_a_reconnect_an_unavailable_channel_is_tried_again_a_forbidden_one_dropped(
    live: Live, page: Page
) -> None:
    subscribes: list[dict[str, Any]] = []

    async def first(websocket: WebSocket) -> None:
        for _ in range(2):  # a, then b
            subscribes.append(subscribe := await websocket.receive_json())
            await websocket.send_json(reply(subscribe, offset=0, epoch="e1"))
        await websocket.close(1012)

    async def second(websocket: WebSocket) -> None:
        a, b = [await websocket.receive_json() for _ in range(2)]
        subscribes.extend((a, b))
        await websocket.send_json(refusal(a, "unavailable"))
        await websocket.send_json(refusal(b, "forbidden"))
        subscribes.append(again := await websocket.receive_json())
        await websocket.send_json(reply(again, offset=0, epoch="e1", recovered=True))
        await websocket.send_json(message("a", 1, "e1"))
        await websocket.send_json(message("b", 1, "e1"))  # not subscribed any more
        await websocket.send_json(message("a", 2, "e1"))
        await held_open(websocket)

    async with serve(stand_in(first, second)) as service:
        backoff = {"initial": 10, "max": 10}
        await started(page, live, None, url=service.ws("/ws"), backoff=backoff, early=("a", "b"))
        await page.wait_for_function("got.some((m) => m.offset === 2)")
        got = await run(page, "got")
        seen = await events(page)
    assert [(m["channel"], m["offset"]) for m in got] == [("a", 1), ("a", 2)]
    assert [s["channel"] for s in subscribes] == ["a", "b", "a", "b", "a"]
    assert [s.get("since") for s in subscribes[2:]] == [{"offset": 0, "epoch": "e1"}] * 3
    unavailable, dropped, recovered = seen
    assert unavailable["type"] == "error"
    assert (unavailable["channel"], unavailable["code"]) == ("a", "unavailable")
    assert 0 <= unavailable["retryIn"] <= 10
    assert dropped == {
        "kind": "event",
        "type": "unsubscribed",
        "channel": "b",
        "code": "forbidden",
        "reason": "said forbidden",
    }
    assert (recovered["type"], recovered["channel"]) == ("recovered", "a")


@pytest.mark.browser
async def test_a_page_with_more_channels_than_one_burst_gets_them_all_and_back_after_a_restart(
    page: Page,
) -> None:
    # WS_MAX_SUBSCRIPTIONS (128) is more than WS_BURST (100) commands at once: the
    # client paces its commands by the welcome's rate and burst, when the page
    # subscribes and when a reconnect resubscribes every channel.
    channels = 128
    subscribe_all = """(count) => Promise.all(Array.from({ length: count }, (_, i) =>
      outcome(client.subscribe(`room-${i}`, deliver)).then((o) => o.error?.code ?? "ok")))"""
    async with serve(with_page(create_app(Settings(_env_file=None)))) as service:
        port = service.port
        await started(page, service, None)
        assert await run(page, subscribe_all, channels) == ["ok"] * channels
    # The service restarts on the same port (its clients were closed with 1012).
    async with serve(with_page(create_app(Settings(_env_file=None))), port=port):
        # New process, new epochs: each channel comes back with a resync.
        await page.wait_for_function(
            f"seen.filter((s) => s.type === 'resync').length === {channels}", timeout=WAIT * 1000
        )
        seen = await statuses(page)
    closes = [s["code"] for s in seen if s["state"] == "closed"]
    # Closed by the restart; an attempt made before the new process listened fails (1006).
    assert closes[0] == 1012, closes
    assert set(closes[1:]) <= {1006}, closes
    assert sum(s["state"] == "open" for s in seen) == 2
