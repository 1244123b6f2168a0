"""The WebSocket metrics, over real sockets: each moves when its event happens.

The figures are what GET /metrics says, as Prometheus would read them; the
counters live in a process-wide registry, so each test compares before and after.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx2
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from {{ cookiecutter.package_name }}.broadcast.envelope import json_text
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings

from .live import (
    Live,
    closed_with,
    command,
    connected,
    joined,
    published,
    receive,
    serve,
    stalled_client,
)
from .processes import until
from .scrape import Key, moved, scraped, value

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def live() -> AsyncIterator[Live]:
    """One service for the module's tests: they read figures relative to each other."""
    settings = Settings(_env_file=None, ws_max_bad_frames=2, ws_queue_size=8)
    async with serve(create_app(settings)) as running:
        yield running


async def scrape(live: Live) -> dict[Key, float]:
    return await scraped(live.http("/metrics"))


async def gauges(live: Live) -> tuple[float, float, float]:
    figures = await scrape(live)
    return (
        value(figures, "websocket_connections"),
        value(figures, "websocket_subscriptions"),
        value(figures, "channels"),
    )


async def test_gauges_follow_connections_subscriptions_and_channels(live: Live) -> None:
    assert await gauges(live) == (0, 0, 0)
    async with connect(live.ws("/ws")) as one, connect(live.ws("/ws")) as two:
        await joined(one, "gauges-a", "gauges-b")
        await joined(two, "gauges-a")
        assert await gauges(live) == (2, 3, 2)
        await command(one, "unsubscribe", channel="gauges-b")
        assert await gauges(live) == (2, 2, 1)
    await until(lambda: _gauges_are(live, (0, 0, 0)))
    assert value(await scrape(live), "backend_ready") == 1


async def _gauges_are(live: Live, expected: tuple[float, float, float]) -> bool:
    return await gauges(live) == expected


async def test_a_fan_out_counts_its_frames_and_one_latency_per_message(live: Live) -> None:
    before = await scrape(live)
    readers = [await connect(live.ws("/ws")) for _ in range(3)]
    try:
        for ws in readers:
            await joined(ws, "fan-out")
        # The publisher's own copy comes before or after its reply: `published` takes both.
        assert (await published(readers[0], "fan-out", 1))["data"] == 1
        async with httpx2.AsyncClient() as http:
            answer = await http.post(live.http("/channels/fan-out/messages"), json=2)
            assert answer.status_code == 202, answer.text
        assert (await receive(readers[0]))["data"] == 2
        for ws in readers[1:]:
            assert [(await receive(ws))["data"] for _ in range(2)] == [1, 2]
    finally:
        for ws in readers:
            await ws.close()
    after = await scrape(live)

    assert moved(before, after, "messages_published_total", via="websocket") == 1
    assert moved(before, after, "messages_published_total", via="http") == 1
    assert moved(before, after, "frames_delivered_total") == 6
    # Once per message fanned out (each in an event-loop step of its own), not once per frame.
    assert moved(before, after, "delivery_latency_seconds_count") == 2
    assert 0 <= moved(before, after, "delivery_latency_seconds_sum") < 5


async def test_closes_are_counted_by_code_and_bad_frames_one_by_one(live: Live) -> None:
    before = await scrape(live)
    async with connect(live.ws("/ws")) as ws:
        await connected(ws)
        await ws.send("not json")
        assert (await receive(ws))["type"] == "error"
        await ws.send(json.dumps({"type": "nonsense"}))
        assert (await closed_with(ws))[0] == 4008
    after = await scrape(live)
    labels = {"code": "4008", "reason": "bad_frames"}
    assert moved(before, after, "websocket_closed_total", **labels) == 1
    assert moved(before, after, "websocket_bad_frames_total") == 2


async def test_refused_handshakes_are_counted_by_reason() -> None:
    settings = Settings(_env_file=None, ws_max_connections=1)
    async with serve(create_app(settings)) as live:
        before = await scrape(live)
        with pytest.raises(InvalidStatus):
            await connect(live.ws("/ws"), origin="https://evil.example")  # type: ignore[arg-type]
        async with connect(live.ws("/ws")) as holding:
            await connected(holding)
            with pytest.raises(InvalidStatus):
                await connect(live.ws("/ws"))
        after = await scrape(live)
    for reason in ("origin", "full"):
        moved = value(after, "websocket_handshakes_refused_total", reason=reason) - value(
            before, "websocket_handshakes_refused_total", reason=reason
        )
        assert moved == 1, reason


async def test_the_backlog_gauge_counts_messages_waiting_for_a_slow_client() -> None:
    settings = Settings(_env_file=None, ws_queue_size=10_000, ws_send_timeout=60)
    async with serve(create_app(settings)) as live:
        stalled = await stalled_client(live, "backlog")
        assert value(await scrape(live), "websocket_backlog_messages") == 0
        pad = "x" * 4000
        # Publish until the socket's buffers are full and messages wait in the hub.
        for n in range(10_000):
            await live.hub.publish("backlog", json_text({"n": n, "pad": pad}), "test")
            await asyncio.sleep(0)
            if live.hub.stats().backlog:
                break
        # Nothing drains while the client does not read: the scrape sees the wait.
        assert value(await scrape(live), "websocket_backlog_messages") > 0
        # Gone without a close handshake: it could not read the close frame
        # behind the messages it never took.
        stalled.transport.abort()


async def test_websocket_connections_are_no_http_requests(live: Live) -> None:
    before = await scrape(live)
    async with connect(live.ws("/ws")) as ws:
        await joined(ws, "not-http")
    after = await scrape(live)
    requests = {
        key: count
        for key, count in after.items()
        if key[0].endswith("_http_requests_total") and count != before.get(key, 0)
    }
    # The one scrape in between, and nothing for the WebSocket.
    assert [dict(labels)["route"] for _, labels in requests] == ["/metrics"]


async def test_metrics_enabled_false_counts_nothing_of_websockets(live: Live) -> None:
    before = await scrape(live)
    async with serve(create_app(Settings(_env_file=None, metrics_enabled=False))) as unmeasured:
        assert unmeasured.hub.metrics is None
        async with connect(unmeasured.ws("/ws")) as ws:
            await joined(ws, "unmeasured")
            await command(ws, "publish", channel="unmeasured", data=1)
            await ws.send("not json")
            # The publish's own message may come first: the bad frame is handled once
            # its error is here.
            while (await receive(ws))["type"] != "error":
                pass
    after = await scrape(live)
    for name in ("messages_published", "frames_delivered", "websocket_bad_frames"):
        assert total(after, f"{name}_total") == total(before, f"{name}_total"), name


def total(figures: dict[Key, float], suffix: str) -> float:
    """The sum of every sample whose name ends in `suffix`, whatever its labels."""
    return sum(count for (name, _), count in figures.items() if name.endswith(suffix))
