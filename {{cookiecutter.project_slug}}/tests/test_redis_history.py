"""History and recovery with Redis: offsets, epochs and history kept in Redis, and
recovery across processes, Redis outages and dead connections.

Real redis-server processes throughout; real service processes where the
behaviour spans processes (tests/services.py), an app in this event loop
where one process is all it takes. test_history.py plays the protocol with
the in-memory backend; test_hub.py the races inside one hub.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2
import pytest
from redis.crc import key_slot
from websockets.asyncio.client import ClientConnection, connect

from {{ cookiecutter.package_name }}.broadcast.envelope import (
    Position,
    message_frame,
    resync_frame,
)
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.redis_client import create_redis
from {{ cookiecutter.package_name }}.settings import Settings

from .live import (
    WAIT,
    Live,
    across_a_quiet_spell,
    command,
    connected,
    joined,
    receive,
    serve,
)
from .processes import until
from .services import TIMEOUT, ServiceProcess, redis_settings, services

if TYPE_CHECKING:  # imported at run time by pytest_plugins, which must come first
    from .redis_server import RedisServer

pytest_plugins = ["tests.redis_server"]
pytestmark = pytest.mark.anyio

# HISTORY_SIZE of the apps in this event loop: small, so falling out of it is quick.
SIZE = 5


@pytest.fixture
def channel() -> str:
    """A channel name of this test's own: the session's Redis is shared."""
    return f"history-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
async def live(redis_url: str) -> AsyncIterator[Live]:
    """One app on the session's Redis keeping SIZE messages per channel, for the module."""
    async with serve(create_app(redis_settings(redis_url, history_size=SIZE))) as live:
        yield live


def keys(settings: Settings, channel: str) -> tuple[str, str]:
    """The Redis keys of `channel`: its position hash and its history stream."""
    tag = "{" + channel + "}"
    return settings.redis_key("position", tag), settings.redis_key("history", tag)


async def post(http: httpx2.AsyncClient, url: str, channel: str, data: Any) -> dict[str, Any]:
    """Publish `data` over HTTP to the service at `url`; the accepted position."""
    response = await http.post(f"{url}/channels/{channel}/messages", json=data)
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    return accepted


async def subscribe(
    ws: ClientConnection, channel: str, since: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Subscribe with `since` (if any); the reply, which must be one."""
    fields = {} if since is None else {"since": since}
    reply = await command(ws, "subscribe", channel=channel, **fields)
    assert reply["type"] == "reply", reply
    return reply


def position(frame: dict[str, Any]) -> dict[str, Any]:
    """The `since` a client that saw `frame` (a message or a reply) would send."""
    return {"offset": frame["offset"], "epoch": frame["epoch"]}


async def messages(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    """The next `count` frames, each of which must be a message."""
    frames = [await receive(ws) for _ in range(count)]
    assert all(frame["type"] == "message" for frame in frames), frames
    return frames


# --- What Redis holds -----------------------------------------------------------


async def test_a_channels_keys_share_one_hash_tag_under_the_prefix_capped_and_expiring(
    live: Live, redis_url: str, channel: str
) -> None:
    settings: Settings = live.app.state.settings
    async with (
        httpx2.AsyncClient(timeout=WAIT) as http,
        create_redis(redis_url) as redis,
    ):
        accepted = [await post(http, live.http(""), channel, n) for n in range(1, SIZE + 4)]
        found = sorted([key async for key in redis.scan_iter(match=f"*{channel}*")])
        position_key, history_key = keys(settings, channel)
        assert found == sorted([position_key, history_key])
        assert all(key.startswith(settings.redis_key() + ":") for key in found)
        # One cluster slot for both, the slot of the channel's name alone.
        assert {key_slot(key.encode()) for key in found} == {key_slot(channel.encode())}
        last = accepted[-1]
        assert await redis.hgetall(position_key) == {
            "epoch": last["epoch"],
            "offset": str(last["offset"]),
        }
        # Capped at HISTORY_SIZE: the last ones, each at its offset.
        entries = await redis.xrange(history_key) or []
        assert [entry_id for entry_id, _ in entries] == [
            f"{n}-0" for n in range(last["offset"] - SIZE + 1, last["offset"] + 1)
        ]
        for key in found:
            assert 0 < await redis.pttl(key) <= settings.history_ttl * 1000


async def test_redis_memory_stays_bounded_however_many_channels_are_published_to(
    redis_url: str, channel: str
) -> None:
    # Each channel costs a hash and a stream of at most HISTORY_SIZE entries,
    # both gone HISTORY_TTL after its last publish.
    settings = redis_settings(redis_url, history_size=3, history_ttl=3.0)
    names = [f"{channel}-{n}" for n in range(200)]
    async with serve(create_app(settings)) as live, create_redis(redis_url) as redis:

        async def publish_to(name: str) -> dict[str, Any]:
            reply: dict[str, Any] = {}
            for number in range(8):
                position = await live.hub.publish(name, json.dumps(number), sender="test")
                reply = position._asdict()
            return reply

        last: list[dict[str, Any]] = []
        for start in range(0, len(names), 50):  # fewer at once than the connection pool holds
            last += await asyncio.gather(*(publish_to(name) for name in names[start : start + 50]))
        async with redis.pipeline(transaction=False) as pipe:
            for name in names:
                position_key, history_key = keys(settings, name)
                pipe.xlen(history_key)
                pipe.pttl(history_key)
                pipe.pttl(position_key)
            answers = await pipe.execute()
        assert len(answers) == 3 * len(names)
        for length, stream_ttl, position_ttl in zip(*[iter(answers)] * 3, strict=True):
            assert length == 3
            assert 0 < stream_ttl <= 3000
            assert 0 < position_ttl <= 3000

        async def all_expired() -> bool:
            return not [key async for key in redis.scan_iter(match=f"*{channel}-*", count=1000)]

        await until(all_expired)
        # A client that held a place in one of them learns that history is gone.
        async with connect(live.ws("/ws")) as ws:
            await connected(ws)
            reply = await subscribe(ws, names[0], last[0])
        assert reply["recovered"] is False
        assert reply["offset"] == 0
        assert reply["epoch"] != last[0]["epoch"]


async def test_with_history_size_0_offsets_go_on_in_redis_and_no_stream_is_kept(
    redis_url: str, channel: str
) -> None:
    settings = redis_settings(redis_url, history_size=0)
    async with (
        serve(create_app(settings)) as live,
        connect(live.ws("/ws")) as behind,
        connect(live.ws("/ws")) as current,
        httpx2.AsyncClient(timeout=WAIT) as http,
        create_redis(redis_url) as redis,
    ):
        accepted = [await post(http, live.http(""), channel, n) for n in range(1, 4)]
        assert [a["offset"] for a in accepted] == [1, 2, 3]
        position_key, history_key = keys(settings, channel)
        assert await redis.exists(history_key) == 0
        assert await redis.hget(position_key, "offset") == "3"
        await connected(behind)
        await connected(current)
        missed = await subscribe(behind, channel, position(accepted[0]))
        assert (missed["recovered"], missed["offset"]) == (False, 3)
        nothing_missed = await subscribe(current, channel, position(accepted[-1]))
        assert (nothing_missed["recovered"], nothing_missed["offset"]) == (True, 3)
        page = (await http.get(live.http(f"/channels/{channel}/history"))).json()
        assert (page["offset"], page["messages"]) == (3, [])
        await post(http, live.http(""), channel, 4)
        for ws in (behind, current):
            assert [m["offset"] for m in await messages(ws, 1)] == [4]


async def test_a_script_redis_forgot_is_loaded_again(
    live: Live, redis_url: str, channel: str
) -> None:
    # As after a restart, or a SCRIPT FLUSH: EVALSHA answers NOSCRIPT.
    async with (
        httpx2.AsyncClient(timeout=WAIT) as http,
        create_redis(redis_url) as redis,
        connect(live.ws("/ws")) as ws,
    ):
        first = await post(http, live.http(""), channel, 1)
        await redis.script_flush()
        assert (await post(http, live.http(""), channel, 2))["offset"] == 2
        await redis.script_flush()
        await connected(ws)
        reply = await subscribe(ws, channel, position(first))
        assert (reply["recovered"], reply["offset"]) == (True, 2)
        assert [m["data"] for m in await messages(ws, 1)] == [2]


# --- Entries that are not ours --------------------------------------------------


def _tampered(kind: str, channel: str, at: Position, data: str) -> dict[str, str]:
    """The fields of a stream entry at `at` that is not what the service would store there."""
    valid = message_frame(channel, at, "0123456789ab", "sender", data)
    texts: dict[str, Callable[[], str]] = {
        "not-json": lambda: "not json",
        "other-channel": lambda: message_frame(f"{channel}x", at, "0123456789ab", "sender", data),
        "other-offset": lambda: message_frame(
            channel, Position(at.offset + 1, at.epoch), "0123456789ab", "sender", data
        ),
        "other-epoch": lambda: message_frame(
            channel, Position(at.offset, "0000beef"), "0123456789ab", "sender", data
        ),
        "too-large": lambda: message_frame(
            channel, at, "0123456789ab", "sender", json.dumps("x" * 65 * 1024)
        ),
        "not-as-serialised": lambda: json.dumps(json.loads(valid), indent=1),
        "a-resync": lambda: resync_frame(channel, at, "origin", "fake"),
    }
    if kind == "other-field":
        return {"x": valid}
    return {"m": texts[kind]()}


TAMPERINGS = [
    "not-json",
    "other-channel",
    "other-offset",
    "other-epoch",
    "too-large",
    "not-as-serialised",
    "a-resync",
    "other-field",
    "other-id",
]


@pytest.mark.parametrize("kind", TAMPERINGS)
@pytest.mark.parametrize("tampered", [2, 4, 5], ids=["first", "middle", "last"])
async def test_a_tampered_history_entry_ends_what_is_recovered_and_is_never_delivered(
    live: Live, redis_url: str, channel: str, kind: str, tampered: int
) -> None:
    settings: Settings = live.app.state.settings
    _, history_key = keys(settings, channel)
    async with (
        httpx2.AsyncClient(timeout=WAIT) as http,
        create_redis(redis_url) as redis,
        connect(live.ws("/ws")) as ws,
    ):
        accepted = [await post(http, live.http(""), channel, n) for n in range(1, SIZE + 1)]
        epoch = accepted[-1]["epoch"]
        # The stream rewritten by someone else with access to this Redis.
        await redis.delete(history_key)
        for offset in range(1, SIZE + 1):
            at = Position(offset, epoch)
            entry_id = f"{offset}-0"
            fields = {"m": message_frame(channel, at, "0123456789ab", "sender", json.dumps(offset))}
            if offset == tampered:
                if kind == "other-id":
                    entry_id = f"{offset}-1"
                else:
                    fields = _tampered(kind, channel, at, json.dumps(offset))
            await redis.xadd(history_key, fields, id=entry_id)  # type: ignore[arg-type]
        await redis.expire(history_key, 60)

        page = (
            await http.get(live.http(f"/channels/{channel}/history"), params={"since": 1})
        ).json()
        assert [m["offset"] for m in page["messages"]] == list(range(2, tampered))
        await connected(ws)
        reply = await subscribe(ws, channel, {"offset": 1, "epoch": epoch})
        assert (reply["recovered"], reply["offset"]) == (False, SIZE)
        await post(http, live.http(""), channel, "live")
        # Nothing recovered, the tampered entry least of all: the live one comes next.
        [frame] = await messages(ws, 1)
        assert (frame["offset"], frame["data"]) == (SIZE + 1, "live")


# --- Epochs: when history was lost ----------------------------------------------


@pytest.mark.parametrize("lost", ["both-keys", "position", "stream"])
async def test_a_channel_whose_keys_were_evicted_tells_clients_what_it_cannot_recover(
    live: Live, redis_url: str, channel: str, lost: str
) -> None:
    settings: Settings = live.app.state.settings
    position_key, history_key = keys(settings, channel)
    async with (
        httpx2.AsyncClient(timeout=WAIT) as http,
        create_redis(redis_url) as redis,
        connect(live.ws("/ws")) as behind,
        connect(live.ws("/ws")) as current,
    ):
        accepted = [await post(http, live.http(""), channel, n) for n in range(1, 4)]
        gone = {"both-keys": [position_key, history_key], "position": [position_key]}
        await redis.delete(*gone.get(lost, [history_key]))
        await connected(behind)
        await connected(current)
        reply = await subscribe(behind, channel, position(accepted[0]))
        assert reply["recovered"] is False
        if lost == "stream":  # the position is known still: nothing after it is kept
            assert position(reply) == position(accepted[-1])
            caught_up = await subscribe(current, channel, position(accepted[-1]))
            assert caught_up["recovered"] is True
        else:  # a new epoch, from offset 0, and the old entries are not served under it
            assert reply["offset"] == 0
            assert reply["epoch"] != accepted[0]["epoch"]
            page = (await http.get(live.http(f"/channels/{channel}/history"))).json()
            assert page["messages"] == []
            again = await subscribe(current, channel, position(accepted[-1]))
            assert again["recovered"] is False
        fresh = await post(http, live.http(""), channel, "after")
        for ws in (behind, current):
            [frame] = await messages(ws, 1)
            assert position(frame) == position(fresh)
            assert fresh["offset"] == reply["offset"] + 1


async def test_falling_out_of_history_size_in_redis_means_recovered_false(
    live: Live, channel: str
) -> None:
    async with (
        httpx2.AsyncClient(timeout=WAIT) as http,
        connect(live.ws("/ws")) as ws,
    ):
        first = await post(http, live.http(""), channel, 1)
        for n in range(2, SIZE + 3):  # message 2 falls out: SIZE + 1 after the first
            last = await post(http, live.http(""), channel, n)
        await connected(ws)
        reply = await subscribe(ws, channel, position(first))
        assert reply["recovered"] is False
        assert position(reply) == position(last)
        await post(http, live.http(""), channel, "live")
        assert [m["data"] for m in await messages(ws, 1)] == ["live"]


@pytest.mark.parametrize("loss", ["flushall", "restart", "restart-with-persistence"])
async def test_what_redis_loses_changes_the_epoch_and_what_it_keeps_is_recovered(
    redis_server: RedisServer, channel: str, loss: str
) -> None:
    if loss == "restart-with-persistence":
        redis_server.stop()
        redis_server.persistent = True
        redis_server.start()
    settings = redis_settings(redis_server.url, history_size=SIZE)
    async with (
        serve(create_app(settings)) as live,
        connect(live.ws("/ws")) as watcher,
        httpx2.AsyncClient(timeout=WAIT) as http,
    ):
        await joined(watcher, channel)
        accepted = [await post(http, live.http(""), channel, n) for n in range(1, 4)]
        seen = await messages(watcher, 3)
        epoch = seen[-1]["epoch"]
        if loss == "flushall":
            async with create_redis(redis_server.url) as redis:
                await redis.flushall()
        else:
            redis_server.kill()
            redis_server.restart()
        kept = loss == "restart-with-persistence"
        if loss == "restart":
            # Caught up after the outage: nothing to recover from, so a resync
            # naming where the channel is now.
            resync = await receive(watcher)
            assert (resync["type"], resync["channel"], resync["offset"]) == ("resync", channel, 0)
            assert resync["epoch"] != epoch
        await until(lambda: _ready(http, live))
        after = await post(http, live.http(""), channel, "after")
        assert (after["offset"], after["epoch"] == epoch) == ((4, True) if kept else (1, False))
        # With persistence nothing was lost: no resync, the numbering goes on.
        # After a FLUSHALL the watcher, connected all along, missed nothing: it
        # gets the new epoch's first message as it is.
        [frame] = await messages(watcher, 1)
        assert position(frame) == position(after)
        async with connect(live.ws("/ws")) as returning:
            await connected(returning)
            reply = await subscribe(returning, channel, position(accepted[0]))
            assert reply["recovered"] is kept
            assert position(reply) == position(after)
            if kept:
                assert [m["data"] for m in await messages(returning, 3)] == [2, 3, "after"]


async def _ready(http: httpx2.AsyncClient, live: Live) -> bool:
    return (await http.get(live.http("/ready"))).status_code == 200


# --- Across service processes ---------------------------------------------------


@pytest.fixture(scope="module")
async def two_services(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[list[ServiceProcess]]:
    """Two service processes on the session's Redis, shared by the module's tests."""
    directory = tmp_path_factory.mktemp("services")
    environment = {"REDIS_TIMEOUT": str(TIMEOUT), "WS_RATE": "10000", "WS_BURST": "10000"}
    async with services(2, redis_url, directory, **environment) as started:
        yield started


@pytest.mark.parametrize("back_to", ["same-process", "other-process"])
async def test_a_client_that_reconnects_with_since_gets_what_another_process_published(
    two_services: list[ServiceProcess], channel: str, back_to: str
) -> None:
    first, second = two_services
    async with httpx2.AsyncClient(timeout=WAIT) as http:
        async with connect(first.ws("/ws")) as reader:
            await joined(reader, channel)
            for n in (1, 2):
                await post(http, second.http(""), channel, n)
            seen = await messages(reader, 2)
        # While it is away, the other process publishes.
        for n in (3, 4, 5):
            await post(http, second.http(""), channel, n)
        target = first if back_to == "same-process" else second
        async with connect(target.ws("/ws")) as reader:
            await connected(reader)
            reply = await subscribe(reader, channel, position(seen[-1]))
            assert (reply["recovered"], reply["offset"]) == (True, 5)
            assert reply["epoch"] == seen[-1]["epoch"]
            await post(http, second.http(""), channel, 6)
            frames = await messages(reader, 4)
    assert [(f["offset"], f["data"]) for f in frames] == [(n, n) for n in (3, 4, 5, 6)]


async def test_clients_subscribing_at_once_during_another_process_burst_miss_and_repeat_nothing(
    two_services: list[ServiceProcess], channel: str
) -> None:
    first, second = two_services
    burst = 300
    async with (
        connect(second.ws("/ws")) as publisher,
        connect(first.ws("/ws")) as early,
        connect(first.ws("/ws")) as late,
        connect(first.ws("/ws")) as plain,
    ):
        for ws in (publisher, early, late, plain):
            await connected(ws)
        replies = [await command(publisher, "publish", channel=channel, data=n) for n in (1, 2, 3)]
        since = {"early": position(replies[0]), "late": position(replies[2])}

        async def flood() -> None:
            for number in range(4, burst + 1):
                frame = {"type": "publish", "id": number, "channel": channel, "data": number}
                await publisher.send(json.dumps(frame))
            # Read the replies: unread, they would hold up the closing handshake.
            for _ in range(4, burst + 1):
                assert (await receive(publisher))["type"] == "reply"

        async def follow(ws: ClientConnection, since: dict[str, Any] | None) -> list[int]:
            """Subscribe (with `since`) while the flood goes on: the offset it replies
            with, then those of the messages that follow, up to the last."""
            reply = await subscribe(ws, channel, since)
            if since is not None:
                assert reply["recovered"] is True, reply
            offsets = [reply["offset"]]
            while offsets[-1] < burst or len(offsets) == 1:
                frame = await receive(ws)
                assert frame["type"] == "message", frame
                offsets.append(frame["offset"])
            return offsets

        async with asyncio.timeout(WAIT), asyncio.TaskGroup() as group:
            group.create_task(flood())
            following = {
                "early": group.create_task(follow(early, since["early"])),
                "late": group.create_task(follow(late, since["late"])),
                "plain": group.create_task(follow(plain, None)),
            }
    for name in ("early", "late"):
        _, *offsets = following[name].result()
        assert offsets == list(range(since[name]["offset"] + 1, burst + 1)), name
    # After the reply's offset, every one once, in order.
    replied, *offsets = following["plain"].result()
    assert offsets == list(range(replied + 1, burst + 1))


async def test_the_service_recovers_its_channels_after_its_pubsub_connection_is_killed(
    redis_server: RedisServer,
    channel: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="{{ cookiecutter.package_name }}.broadcast")
    one, two = f"{channel}-one", f"{channel}-two"
    count = 80  # per channel
    async with (
        services(1, redis_server.url, tmp_path, REDIS_TIMEOUT=str(TIMEOUT)) as [publisher],
        serve(create_app(redis_settings(redis_server.url))) as live,
        connect(live.ws("/ws")) as watcher,
        httpx2.AsyncClient(timeout=WAIT) as http,
        create_redis(redis_server.url) as redis,
    ):
        await joined(watcher, one, two)
        frames: list[dict[str, Any]] = []
        some_arrived = asyncio.Event()

        async def publish() -> None:
            # The other process keeps publishing, before, during and after the kill.
            for number in range(1, count + 1):
                for name in (one, two):
                    await post(http, publisher.http(""), name, number)

        async def watch() -> None:
            while len(frames) < 2 * count:
                frames.append(await receive(watcher))
                if len(frames) == count // 2:
                    some_arrived.set()

        async def kill() -> None:
            await some_arrived.wait()
            # Every pub/sub connection on this Redis: the service's subscriber.
            assert await redis.client_kill_filter(_type="pubsub") == 1

        async with asyncio.timeout(WAIT), asyncio.TaskGroup() as group:
            for job in (publish, watch, kill):
                group.create_task(job())
    assert {frame["type"] for frame in frames} == {"message"}, "no resync"
    for name in (one, two):
        mine = [frame for frame in frames if frame["channel"] == name]
        assert [(f["offset"], f["data"]) for f in mine] == [(n, n) for n in range(1, count + 1)]
    assert "2 channel(s) recovered from history, 0 told to resync" in caplog.text


# --- A dead path to Redis ---------------------------------------------------------


class Relay:
    """A TCP relay on loopback in front of Redis, which can stop forwarding without closing.

    `cut` plays a path that dies silently (a NAT or firewall that dropped the
    connection's state, a cable pulled between two switches): the
    connections stay open at both ends and nothing gets through, in either
    direction, and a new connection is accepted but never answered. After
    `heal` new connections work again; the dead ones stay dead, as they do
    once the state on the path is gone.
    """

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("redis://").split("/", 1)[0].rsplit(":", 1)
        self._target = (host, int(port))
        self._forwarding = True
        # Each connection's flag: True while it may forward.
        self._links: list[list[bool]] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    def url(self, database: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{database}"

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    def cut(self) -> None:
        self._forwarding = False
        for link in self._links:
            link[0] = False

    def heal(self) -> None:
        self._forwarding = True

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = [self._forwarding]
        self._links.append(link)
        self._writers.add(writer)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._writers.add(upstream_writer)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pump(reader, upstream_writer, link))
                group.create_task(self._pump(upstream_reader, writer, link))
        finally:
            for end in (writer, upstream_writer):
                self._writers.discard(end)
                end.close()

    @staticmethod
    async def _pump(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: list[bool]
    ) -> None:
        """Copy until end of file; while the link is dead, read and drop (nothing closes)."""
        try:
            while data := await reader.read(65536):
                if link[0]:
                    writer.write(data)
                    await writer.drain()
        except OSError:
            pass
        writer.close()


# Small, so the test is quick: a dead path must be noticed within their sum.
HEALTH_CHECK_INTERVAL = 0.5
DEAD_PATH_TIMEOUT = 0.5
# What the event loop may add to that bound on a busy machine.
SCHEDULING_SLACK = 0.5


async def test_a_dead_path_to_redis_is_noticed_in_time_and_what_was_missed_is_recovered(
    redis_url: str, channel: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="{{ cookiecutter.package_name }}.broadcast")
    kept, lost = f"{channel}-kept", f"{channel}-lost"
    async with Relay(redis_url) as relay:
        behind_relay = redis_settings(
            relay.url(),
            redis_timeout=DEAD_PATH_TIMEOUT,
            redis_health_check_interval=HEALTH_CHECK_INTERVAL,
            history_size=SIZE,
        )
        direct = redis_settings(redis_url, history_size=SIZE)
        async with (
            serve(create_app(behind_relay)) as service,
            serve(create_app(direct)) as other,
            connect(service.ws("/ws")) as watcher,
            httpx2.AsyncClient(timeout=WAIT) as http,
        ):
            await joined(watcher, kept, lost)
            for name in (kept, lost):
                await post(http, other.http(""), name, 1)
            await messages(watcher, 2)

            cut_at = time.time()
            relay.cut()
            # Published through another connection while the path is dead:
            # `kept` within HISTORY_SIZE, `lost` past it.
            for n in range(2, 5):
                await post(http, other.http(""), kept, n)
            for n in range(2, SIZE + 4):
                await post(http, other.http(""), lost, n)
            await until(lambda: _logged(caplog, "lost Redis"))
            [noticed] = [r for r in caplog.records if "lost Redis" in r.getMessage()]
            bound = HEALTH_CHECK_INTERVAL + DEAD_PATH_TIMEOUT + SCHEDULING_SLACK
            assert noticed.created - cut_at <= bound, noticed.getMessage()
            assert "PING" in noticed.getMessage()

            relay.heal()
            frames = [await receive(watcher) for _ in range(3 + 1)]
            for name in (kept, lost):
                await post(http, other.http(""), name, "live")
            frames += [await receive(watcher) for _ in range(2)]
    of_kept = [(f["type"], f.get("data")) for f in frames if f["channel"] == kept]
    assert of_kept == [("message", n) for n in (2, 3, 4, "live")]
    of_lost = [f for f in frames if f["channel"] == lost]
    assert [f["type"] for f in of_lost] == ["resync", "message"]
    assert of_lost[0]["offset"] == SIZE + 3
    assert (of_lost[1]["offset"], of_lost[1]["data"]) == (SIZE + 4, "live")


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return text in caplog.text


async def test_the_history_endpoint_returns_what_is_kept_after_an_older_since(
    live: Live, channel: str
) -> None:
    # HISTORY_SIZE is 5: 3..7 kept; a since older than that still gets them.
    async with httpx2.AsyncClient(timeout=WAIT) as http:
        for n in range(1, 8):
            await post(http, live.http(""), channel, n)
        url = live.http(f"/channels/{channel}/history")
        everything = (await http.get(url)).json()
        after_one = (await http.get(url, params={"since": 1})).json()
        after_five = (await http.get(url, params={"since": 5})).json()
    assert everything["offset"] == 7
    assert [m["offset"] for m in everything["messages"]] == [3, 4, 5, 6, 7]
    assert [m["offset"] for m in after_one["messages"]] == [3, 4, 5, 6, 7]
    assert [m["offset"] for m in after_five["messages"]] == [6, 7]


async def test_a_subscriber_connected_all_along_gets_every_message_after_a_quiet_spell(
    redis_url: str, channel: str
) -> None:
    # Past HISTORY_TTL the keys expire and the channel starts a new epoch: nothing
    # was missed by a subscriber that stayed connected, so no resync, every message.
    ttl = 0.3
    async with serve(create_app(redis_settings(redis_url, history_ttl=ttl))) as live:
        frames = await across_a_quiet_spell(live, channel, 3 * ttl)
    assert [(f["type"], f.get("data")) for f in frames] == [
        ("message", "after"),
        ("message", "later"),
    ]
