"""Break12 findings in history and recovery (issue 12): kinds the suite misses.

Copy into a `use_redis=true` bake's `tests/` (package `realtime_service`); each
test fails on main at 18757e8.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from websockets.asyncio.client import connect

from realtime_service.broadcast.envelope import draft
from realtime_service.broadcast.history import MemoryHistory
from realtime_service.main import create_app
from realtime_service.settings import Settings

from .live import WAIT, Live, command, joined, receive, serve

pytest_plugins = ["tests.redis_server"]

# HISTORY_SIZE of the apps here: small, so falling out of it is quick.
SIZE = 5
# HISTORY_TTL of the apps here, in seconds: short, so a channel goes quiet for longer quickly.
TTL = 0.5


# --- HISTORY_MAX_BYTES: one channel's ring is not bounded by it ---------------------------


def test_history_max_bytes_bounds_the_memory_even_when_one_channel_holds_it_all() -> None:
    # .env.example: "bytes of history this process keeps across all channels". The
    # eviction stops at the channel just published to (`keep`), so one busy channel
    # (or HISTORY_SIZE x 64 KiB messages) holds any amount: 20 MB here, with a 1 MB bound.
    bound = 1024 * 1024
    history = MemoryHistory(size=10_000, ttl=300, max_bytes=bound)
    data = '"' + "x" * 10_000 + '"'
    for _ in range(2_000):
        history.append("busy", draft("busy", "0" * 12, "http", data))
    assert history.bytes <= bound, f"{history.bytes} bytes kept, over the {bound} byte bound"


# --- GET /channels/{channel}/history with Redis, once the channel passed HISTORY_SIZE ----


@pytest.fixture(scope="module")
async def redis_live(redis_url: str) -> AsyncIterator[Live]:
    settings = Settings(_env_file=None, redis_url=redis_url, history_size=SIZE)
    async with serve(create_app(settings)) as live:
        yield live


@pytest.mark.anyio
async def test_with_redis_the_history_endpoint_returns_what_is_kept_after_an_older_since(
    redis_live: Live,
) -> None:
    # README: "the kept envelopes after `since` (default 0: all kept) ... If the first
    # message's offset is not `since + 1` ... older messages are gone". The memory
    # backend answers 3..7 here (tests/test_history.py); Redis answers no message at
    # all, for the default since=0 too, as soon as a channel has passed HISTORY_SIZE.
    channel = f"page-{uuid.uuid4().hex[:12]}"
    async with httpx2.AsyncClient(base_url=redis_live.http(""), timeout=WAIT) as http:
        for n in range(1, 8):  # HISTORY_SIZE is 5: 3..7 kept
            answer = await http.post(f"/channels/{channel}/messages", json=n)
            assert answer.status_code == 202, answer.text
        everything = (await http.get(f"/channels/{channel}/history")).json()
        after_one = (await http.get(f"/channels/{channel}/history", params={"since": 1})).json()
    assert everything["offset"] == 7
    assert [m["offset"] for m in everything["messages"]] == [3, 4, 5, 6, 7]
    assert [m["offset"] for m in after_one["messages"]] == [3, 4, 5, 6, 7]


# --- A live subscriber of a channel quiet for longer than HISTORY_TTL --------------------


async def _quiet_then_two_publishes(live: Live, channel: str) -> list[dict[str, Any]]:
    """Subscribe, publish one, stay quiet past HISTORY_TTL, publish two more: what the
    subscriber received after its reply."""
    async with connect(live.ws("/ws")) as subscriber, connect(live.ws("/ws")) as publisher:
        await joined(subscriber, channel)
        await joined(publisher)
        await command(publisher, "publish", channel=channel, data="before")
        assert (await receive(subscriber))["data"] == "before"
        # The passing of time is what is tested: the channel's history expires.
        await asyncio.sleep(TTL * 3)
        await command(publisher, "publish", channel=channel, data="after")
        await command(publisher, "publish", channel=channel, data="later")
        frames: list[dict[str, Any]] = []
        async with asyncio.timeout(WAIT):
            while not frames or frames[-1].get("data") != "later":
                frames.append(await receive(subscriber))
    return frames


@pytest.mark.anyio
@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_a_subscriber_connected_all_along_gets_every_message_after_a_quiet_spell(
    backend: str, request: pytest.FixtureRequest
) -> None:
    # README: delivery on a live connection is "what is published while a client is
    # subscribed and connected, in offset order", and `resync` is "sent only for
    # channels the service could not recover after a Redis outage". After HISTORY_TTL
    # without a publish the channel starts a new epoch; the hub takes that for a gap,
    # sends `resync` ("messages may have been missed") with no outage at all, and never
    # delivers "after", the new epoch's offset 1, which it had in hand.
    redis_url = request.getfixturevalue("redis_url") if backend == "redis" else None
    settings = Settings(_env_file=None, redis_url=redis_url, history_ttl=TTL)
    async with serve(create_app(settings)) as live:
        frames = await _quiet_then_two_publishes(live, f"quiet-{uuid.uuid4().hex[:12]}")
    assert [(f["type"], f.get("data")) for f in frames] == [
        ("message", "after"),
        ("message", "later"),
    ]


# --- Reads that evict: GET history of channels nobody publishes to ------------------------


@pytest.mark.anyio
async def test_reading_the_history_of_unused_channels_does_not_evict_a_live_channels() -> None:
    # A read of a channel with no log starts one (an epoch at offset 0, LOG_OVERHEAD
    # bytes) and counts it against HISTORY_MAX_BYTES, least recently published first out.
    # So GETs alone, allowed to anyone who may subscribe, push out the history of a
    # channel in use: its next message starts a new epoch, and its subscriber, connected
    # all along, gets `resync` instead of the message. 64 KiB takes 256 GETs; the default
    # 64 MiB takes 262,144.
    settings = Settings(_env_file=None, history_max_bytes=64 * 1024)
    async with (
        serve(create_app(settings)) as live,
        connect(live.ws("/ws")) as subscriber,
        connect(live.ws("/ws")) as publisher,
    ):
        await joined(subscriber, "live")
        await joined(publisher)
        await command(publisher, "publish", channel="live", data="before")
        assert (await receive(subscriber))["data"] == "before"
        async with httpx2.AsyncClient(base_url=live.http(""), timeout=WAIT) as http:
            for n in range(300):
                answer = await http.get(f"/channels/unused-{n}/history")
                assert answer.status_code == 200
        await command(publisher, "publish", channel="live", data="after")
        frame = await receive(subscriber)
    assert (frame["type"], frame.get("data"), frame.get("offset")) == ("message", "after", 2)
