"""History and recovery: offsets, epochs, `subscribe` with `since`, GET /channels/{c}/history.

The in-memory backend here; test_redis_broadcast.py plays the same with Redis
across processes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from websockets.asyncio.client import ClientConnection, connect

from {{ cookiecutter.package_name }}.auth.tokens import mint
from {{ cookiecutter.package_name }}.broadcast.envelope import Position, draft, json_text
from {{ cookiecutter.package_name }}.broadcast.history import History, MemoryHistory
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings

from .live import WAIT, Live, across_a_quiet_spell, command, connected, joined, receive, serve

pytestmark = pytest.mark.anyio

SECRET = "history-tests-secret-of-32-bytes!!"
# HISTORY_TTL, in seconds, of the apps whose channels go quiet for longer.
QUIET_TTL = 0.3


class Clock:
    """A clock a test moves by hand (seconds)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def append(history: MemoryHistory, channel: str, *numbers: int) -> list[Position]:
    return [history.append(channel, draft(channel, "o", "s", json_text(n)))[0] for n in numbers]


def data(history: History) -> list[Any]:
    return [json.loads(text)["data"] for _, text in history.messages]


# --- The in-memory history on its own ------------------------------------------


def test_offsets_count_up_per_channel_under_one_epoch() -> None:
    history = MemoryHistory(10, 60.0, 1 << 20)
    a = append(history, "a", 1, 2, 3)
    b = append(history, "b", 1)
    assert [p.offset for p in a] == [1, 2, 3]
    assert [p.offset for p in b] == [1]
    assert len({p.epoch for p in a}) == 1
    assert a[0].epoch != b[0].epoch


def test_a_read_returns_what_follows_an_offset_at_most_limit_and_the_position() -> None:
    history = MemoryHistory(10, 60.0, 1 << 20)
    positions = append(history, "a", *range(1, 8))
    read = history.read("a", 4, None)
    assert read.position == positions[-1]
    assert data(read) == [5, 6, 7]
    assert [offset for offset, _ in read.messages] == [5, 6, 7]
    assert data(history.read("a", 4, 2)) == [5, 6]
    assert history.read("a", None).messages == []
    assert history.read("a", 7).messages == []


def test_only_the_last_size_messages_are_kept() -> None:
    history = MemoryHistory(3, 60.0, 1 << 20)
    append(history, "a", *range(1, 11))
    read = history.read("a", 0)
    assert data(read) == [8, 9, 10]
    assert not read.recovers(Position(6, read.position.epoch))
    assert read.recovers(Position(7, read.position.epoch))


def test_a_read_of_a_channel_never_published_starts_its_epoch_at_offset_0() -> None:
    history = MemoryHistory(3, 60.0, 1 << 20)
    empty = history.read("new", 0)
    assert empty.position.offset == 0
    [first] = append(history, "new", 1)
    assert first == Position(1, empty.position.epoch)


def test_history_expires_ttl_after_the_last_publish_and_comes_back_on_a_new_epoch() -> None:
    clock = Clock()
    history = MemoryHistory(10, 60.0, 1 << 20, clock=clock)
    [first] = append(history, "a", 1)
    clock.now += 59
    [second] = append(history, "a", 2)  # the TTL counts from here
    clock.now += 59
    assert history.read("a", 0).position == second
    clock.now += 2
    after = history.read("a", 0)
    assert after.position.offset == 0
    assert after.position.epoch != first.epoch
    assert not after.recovers(second)


@pytest.mark.parametrize("size", [0, 100])
def test_memory_is_bounded_however_many_channels_are_published_to(size: int) -> None:
    limit = 64 * 1024
    history = MemoryHistory(size, 60.0, limit)
    for number in range(5_000):
        append(history, f"channel-{number}", number)
        assert history.bytes <= limit
    assert history.channels < 5_000
    # The least recently published went first: the latest is still there.
    assert history.read("channel-4999", None).position.offset == 1


def test_size_zero_keeps_offsets_and_epochs_but_no_message() -> None:
    history = MemoryHistory(0, 60.0, 1 << 20)
    positions = append(history, "a", 1, 2)
    assert [p.offset for p in positions] == [1, 2]
    read = history.read("a", 0)
    assert read.messages == []
    assert not read.recovers(positions[0])
    assert read.recovers(positions[1]), "nothing was missed"


def test_max_bytes_bounds_the_memory_even_when_one_channel_holds_it_all() -> None:
    bound = 1024 * 1024
    history = MemoryHistory(size=10_000, ttl=300, max_bytes=bound)
    data = json.dumps("x" * 10_000)
    for _ in range(2_000):
        history.append("busy", draft("busy", "0" * 12, "http", data))
        assert history.bytes <= bound
    assert data[1:9] in history.read("busy", 1_990).messages[-1][1], "the newest are kept"


def test_bytes_are_counted_in_utf_8_not_characters() -> None:
    history = MemoryHistory(size=10, ttl=300, max_bytes=1 << 20)
    before = history.bytes
    append(history, "a", 1)
    ascii_cost = history.bytes - before
    history.append("b", draft("b", "o", "s", json.dumps("é" * 1000, ensure_ascii=False)))
    assert history.bytes - before - ascii_cost > 2000


@pytest.mark.parametrize(
    ("since", "recovers"),
    [
        (Position(5, "e"), True),  # nothing missed
        (Position(3, "e"), True),  # 4 and 5 are kept
        (Position(2, "e"), False),  # 3 is not
        (Position(4, "other"), False),  # another epoch
        (Position(6, "e"), False),  # a future offset: not from this history
    ],
)
def test_recovery_needs_the_same_epoch_and_every_message_after_since(
    since: Position, recovers: bool
) -> None:
    kept = History(Position(5, "e"), [(4, "four"), (5, "five")])
    assert kept.recovers(since) is recovers


@pytest.mark.parametrize("since", [1, 2, 3])
@pytest.mark.parametrize("last", [1, 2, 3, 4])
def test_a_run_of_messages_that_stops_short_of_the_position_recovers_nothing(
    since: int, last: int
) -> None:
    # As a read returns it when a kept entry fails its check: the run ends before it.
    run = [(offset, str(offset)) for offset in range(since + 1, last + 1)]
    assert not History(Position(5, "e"), run).recovers(Position(since, "e"))
    whole = [(offset, str(offset)) for offset in range(since + 1, 6)]
    assert History(Position(5, "e"), whole).recovers(Position(since, "e"))


# --- Recovery on subscribe, over a real socket ------------------------------------


@pytest.fixture(scope="module")
async def live() -> AsyncIterator[Live]:
    async with serve(create_app(Settings(_env_file=None, history_size=5))) as live:
        yield live


async def resubscribed(
    ws: ClientConnection, channel: str, since: dict[str, Any] | None
) -> dict[str, Any]:
    """Subscribe with `since`; the reply."""
    reply = await command(ws, "subscribe", channel=channel, since=since)
    assert reply["type"] == "reply", reply
    return reply


async def publish_all(ws: ClientConnection, channel: str, numbers: range) -> dict[str, Any]:
    """Publish each number, waiting for each reply; the last reply."""
    reply: dict[str, Any] = {}
    for number in numbers:
        reply = await command(ws, "publish", channel=channel, data=number)
        assert reply["type"] == "reply", reply
    return reply


async def test_a_client_that_reconnects_with_since_gets_what_it_missed_then_live(
    live: Live,
) -> None:
    async with connect(live.ws("/ws")) as publisher:
        await connected(publisher)
        async with connect(live.ws("/ws")) as reader:
            await joined(reader, "missed")
            await publish_all(publisher, "missed", range(1, 3))
            seen = [await receive(reader) for _ in range(2)]
        last = {"offset": seen[-1]["offset"], "epoch": seen[-1]["epoch"]}
        await publish_all(publisher, "missed", range(3, 6))  # while it was away
        async with connect(live.ws("/ws")) as reader:
            await connected(reader)
            reply = await resubscribed(reader, "missed", last)
            assert (reply["recovered"], reply["offset"]) == (True, 5)
            assert reply["epoch"] == last["epoch"]
            recovered = [await receive(reader) for _ in range(3)]
            await publish_all(publisher, "missed", range(6, 7))
            live_one = await receive(reader)
    assert [m["data"] for m in recovered] == [3, 4, 5]
    assert [m["offset"] for m in recovered] == [3, 4, 5]
    assert (live_one["data"], live_one["offset"]) == (6, 6)


async def test_since_the_current_offset_recovers_nothing_to_send(live: Live) -> None:
    async with connect(live.ws("/ws")) as publisher, connect(live.ws("/ws")) as ws:
        await connected(publisher)
        await connected(ws)
        published = await publish_all(publisher, "current", range(1, 3))
        since = {"offset": published["offset"], "epoch": published["epoch"]}
        reply = await resubscribed(ws, "current", since)
        assert reply["recovered"] is True
        await publish_all(publisher, "current", range(3, 4))
        assert (await receive(ws))["data"] == 3, "nothing was replayed before it"


@pytest.mark.parametrize(
    "since",
    [
        pytest.param(lambda p: {"offset": 1, "epoch": "0000beef"}, id="another-epoch"),
        pytest.param(lambda p: {"offset": 0, "epoch": p["epoch"]}, id="out-of-history"),
        pytest.param(lambda p: {"offset": p["offset"] + 5, "epoch": p["epoch"]}, id="future"),
    ],
)
async def test_when_history_cannot_cover_since_the_reply_says_recovered_false(
    live: Live, since: Any, request: pytest.FixtureRequest
) -> None:
    channel = f"lost-{request.node.callspec.id}"
    async with connect(live.ws("/ws")) as publisher, connect(live.ws("/ws")) as ws:
        await connected(publisher)
        await connected(ws)
        published = await publish_all(publisher, channel, range(1, 8))  # HISTORY_SIZE is 5
        reply = await resubscribed(ws, channel, since(published))
        assert reply["recovered"] is False
        assert (reply["offset"], reply["epoch"]) == (published["offset"], published["epoch"])
        await publish_all(publisher, channel, range(8, 9))
        assert (await receive(ws))["data"] == 8, "live ones only, from the reply's offset on"


async def test_a_plain_subscribe_says_where_the_channel_is_and_nothing_about_recovery(
    live: Live,
) -> None:
    async with connect(live.ws("/ws")) as ws:
        await connected(ws)
        published = await publish_all(ws, "plain", range(1, 4))
        reply = await resubscribed(ws, "plain", None)
        assert "recovered" not in reply
        assert (reply["offset"], reply["epoch"]) == (published["offset"], published["epoch"])


@pytest.mark.parametrize(
    "since",
    [
        {"offset": -1, "epoch": "e"},
        {"offset": 1.5, "epoch": "e"},
        {"offset": True, "epoch": "e"},
        {"offset": "1", "epoch": "e"},
        {"offset": 1},
        {"offset": 1, "epoch": ""},
        {"offset": 1, "epoch": "e" * 33},
        {"offset": 1, "epoch": 7},
        [1, "e"],
        "1:e",
    ],
)
async def test_a_malformed_since_is_a_bad_frame_and_the_connection_stays(
    live: Live, since: Any
) -> None:
    async with connect(live.ws("/ws")) as ws:
        await connected(ws)
        answer = await command(ws, "subscribe", channel="malformed", since=since)
        assert (answer["type"], answer["code"]) == ("error", "bad_frame")
        assert "since" in answer["reason"]
        assert (await command(ws, "ping"))["type"] == "reply"


async def test_subscribing_with_since_during_a_burst_loses_and_repeats_nothing() -> None:
    # Publishing goes on at full rate, from another connection, while the
    # reader subscribes: the missed, the held and the live must join exactly.
    burst = 400
    settings = Settings(_env_file=None, history_size=burst, ws_rate=10_000, ws_burst=10_000)
    async with (
        serve(create_app(settings)) as live,
        connect(live.ws("/ws")) as publisher,
        connect(live.ws("/ws")) as reader,
    ):
        await connected(publisher)
        await connected(reader)
        first = await publish_all(publisher, "burst", range(1, 11))
        since = {"offset": first["offset"], "epoch": first["epoch"]}

        async def flood() -> None:
            for number in range(11, burst + 1):
                frame = {"type": "publish", "id": number, "channel": "burst", "data": number}
                await publisher.send(json.dumps(frame))

        async with asyncio.TaskGroup() as group:
            group.create_task(flood())
            await asyncio.sleep(0)  # let the flood start before the subscribe
            reply = await resubscribed(reader, "burst", since)
        assert reply["recovered"] is True
        offsets: list[int] = []
        async with asyncio.timeout(WAIT):
            while not offsets or offsets[-1] < burst:
                frame = await receive(reader)
                assert frame["type"] == "message", frame
                offsets.append(frame["offset"])
    assert offsets == list(range(11, burst + 1))


async def test_a_restarted_process_starts_new_epochs_so_clients_know_history_is_gone() -> None:
    async with (
        serve(create_app(Settings(_env_file=None))) as before,
        connect(before.ws("/ws")) as ws,
    ):
        await connected(ws)
        published = await publish_all(ws, "restart", range(1, 3))
    since = {"offset": published["offset"], "epoch": published["epoch"]}
    async with serve(create_app(Settings(_env_file=None))) as after, connect(after.ws("/ws")) as ws:
        await connected(ws)
        reply = await resubscribed(ws, "restart", since)
    assert reply["recovered"] is False
    assert reply["offset"] == 0
    assert reply["epoch"] != since["epoch"]


async def test_with_history_size_0_offsets_go_on_and_nothing_is_recovered() -> None:
    async with (
        serve(create_app(Settings(_env_file=None, history_size=0))) as live,
        connect(live.ws("/ws")) as ws,
        httpx2.AsyncClient(base_url=live.http(""), timeout=WAIT) as http,
    ):
        await connected(ws)
        first = await publish_all(ws, "none", range(1, 2))
        await publish_all(ws, "none", range(2, 3))
        reply = await resubscribed(ws, "none", {"offset": 1, "epoch": first["epoch"]})
        assert (reply["recovered"], reply["offset"]) == (False, 2)
        page = (await http.get("/channels/none/history")).json()
    assert (page["offset"], page["messages"]) == (2, [])


async def test_a_subscriber_connected_all_along_gets_every_message_after_a_quiet_spell() -> None:
    # Past HISTORY_TTL without a publish, the channel starts a new epoch: nothing
    # was missed by a subscriber that stayed connected, so no resync, every message.
    settings = Settings(_env_file=None, history_ttl=QUIET_TTL)
    async with serve(create_app(settings)) as live:
        frames = await across_a_quiet_spell(live, "quiet", 3 * QUIET_TTL)
    assert [(f["type"], f.get("data")) for f in frames] == [
        ("message", "after"),
        ("message", "later"),
    ]


async def test_reading_the_history_of_unused_channels_does_not_evict_a_live_channels() -> None:
    # Reads (subscribes, GET history) of channels nobody publishes to make logs too;
    # they go first, before the history of a channel in use.
    settings = Settings(_env_file=None, history_max_bytes=64 * 1024)
    async with (
        serve(create_app(settings)) as live,
        connect(live.ws("/ws")) as subscriber,
        connect(live.ws("/ws")) as publisher,
    ):
        await joined(subscriber, "live")
        await connected(publisher)
        await command(publisher, "publish", channel="live", data="before")
        assert (await receive(subscriber))["data"] == "before"
        async with httpx2.AsyncClient(base_url=live.http(""), timeout=WAIT) as http:
            for n in range(300):
                answer = await http.get(f"/channels/unused-{n}/history")
                assert answer.status_code == 200
        await command(publisher, "publish", channel="live", data="after")
        frame = await receive(subscriber)
    assert (frame["type"], frame.get("data"), frame.get("offset")) == ("message", "after", 2)


# --- GET /channels/{channel}/history ----------------------------------------------


async def test_the_history_endpoint_returns_kept_messages_after_since(live: Live) -> None:
    async with connect(live.ws("/ws")) as ws:
        await connected(ws)
        last = await publish_all(ws, "page", range(1, 8))  # HISTORY_SIZE is 5: 3..7 kept
    async with httpx2.AsyncClient(base_url=live.http(""), timeout=WAIT) as http:
        everything = await http.get("/channels/page/history")
        after_five = await http.get("/channels/page/history", params={"since": 5})
        limited = await http.get("/channels/page/history", params={"since": 3, "limit": 2})
        bad = [
            await http.get("/channels/page/history", params=params)
            for params in ({"since": -1}, {"limit": 0}, {"since": "x"})
        ]
        bad_channel = await http.get("/channels/-page/history")
    assert everything.status_code == 200
    page = everything.json()
    assert (page["channel"], page["offset"], page["epoch"]) == ("page", 7, last["epoch"])
    assert [m["data"] for m in page["messages"]] == [3, 4, 5, 6, 7]
    assert [m["offset"] for m in page["messages"]] == [3, 4, 5, 6, 7]
    assert {m["type"] for m in page["messages"]} == {"message"}
    assert [m["data"] for m in after_five.json()["messages"]] == [6, 7]
    assert [m["data"] for m in limited.json()["messages"]] == [4, 5]
    assert [response.status_code for response in bad] == [422, 422, 422]
    assert bad_channel.status_code == 422


async def test_the_history_endpoint_is_authorized_as_subscribing_is() -> None:
    settings = Settings(_env_file=None, auth_secret=SECRET)
    reader = mint(SECRET, "reader", ttl=60, channels=["open"])
    async with (
        serve(create_app(settings)) as live,
        httpx2.AsyncClient(base_url=live.http(""), timeout=WAIT) as http,
    ):
        anonymous = await http.get("/channels/open/history")
        bearer = {"Authorization": f"Bearer {reader}"}
        allowed = await http.get("/channels/open/history", headers=bearer)
        forbidden = await http.get("/channels/closed/history", headers=bearer)
    assert anonymous.status_code == 401
    assert allowed.status_code == 200
    assert forbidden.status_code == 403
