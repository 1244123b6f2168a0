"""RedisBackend against a real redis-server: delivery, order, subscriptions, outages, shutdown."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from redis.asyncio import Redis

from {{ cookiecutter.package_name }}.broadcast.backend import BroadcastUnavailable
from {{ cookiecutter.package_name }}.broadcast.envelope import Draft, Position, draft, json_text
from {{ cookiecutter.package_name }}.broadcast.redis import RedisBackend
from {{ cookiecutter.package_name }}.redis_client import create_redis

if TYPE_CHECKING:  # imported at run time by pytest_plugins, which must come first
    from .redis_server import RedisServer

pytest_plugins = ["tests.redis_server"]
pytestmark = pytest.mark.anyio

# Every wait on a condition fails after this many seconds.
WAIT = 5.0
# A socket timeout for the idle test's URL, and a quiet spell twice as long. redis-py 8's
# default (5 s) would end an idle subscriber's read the same way; a URL's own value
# is the shorter case to wait out, and the subscriber must override both.
URL_SOCKET_TIMEOUT = 0.5
IDLE_SECONDS = 2 * URL_SOCKET_TIMEOUT
# The backend's timeout in these tests: a failing publish or subscribe must not take longer.
TIMEOUT = 1.0
# Key and channel names of these tests start with it.
PREFIX = "test"
# The publishing process these tests' envelopes name (a hub's origin: 12 hex digits).
ORIGIN = "0123456789ab"
# Retry quickly after an outage, so the tests that play one stay short.
FAST_RECONNECT = {"reconnect_initial_delay": 0.05, "reconnect_max_delay": 0.2}


class Watch:
    """Lets a test wait for a condition that events (deliveries, log records) make true."""

    def __init__(self) -> None:
        self._conditions: list[tuple[Callable[[], bool], anyio.Event]] = []

    async def until(self, condition: Callable[[], bool]) -> None:
        """Return once `condition()` holds; fail after WAIT seconds."""
        if condition():
            return
        entry = (condition, anyio.Event())
        self._conditions.append(entry)
        try:
            with anyio.fail_after(WAIT):
                await entry[1].wait()
        finally:
            self._conditions.remove(entry)

    def changed(self) -> None:
        for condition, event in self._conditions:
            if condition():
                event.set()


class Recorder(Watch):
    """A Receiver that records what the backend hands it."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[tuple[str, str, Position]] = []
        self.interruptions = 0
        self.resumptions = 0

    def deliver(self, channel: str, message: str, position: Position) -> None:
        assert json.loads(message)["offset"] == position.offset
        self.messages.append((channel, message, position))
        self.changed()

    def interrupted(self) -> None:
        self.interruptions += 1
        self.changed()

    def resumed(self) -> None:
        self.resumptions += 1
        self.changed()

    def received(self, channel: str) -> list[str]:
        """The data of each envelope received on `channel`, in arrival order."""
        return [json.loads(text)["data"] for name, text, _ in self.messages if name == channel]

    def positions(self, channel: str) -> list[Position]:
        return [position for name, _, position in self.messages if name == channel]

    def has_received(self, channel: str, count: int) -> Callable[[], bool]:
        """A condition: `count` messages for `channel` are in."""
        return lambda: len(self.received(channel)) == count

    def has_resumed(self, count: int) -> Callable[[], bool]:
        return lambda: self.resumptions == count


class LogWatch(logging.Handler):
    """The backend's log records, as it emits them: how a test learns the listener's state."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.watch = Watch()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.watch.changed()

    def count(self, text: str, level: int = logging.DEBUG) -> int:
        return sum(1 for r in self.records if text in r.getMessage() and r.levelno >= level)

    async def until_count(self, text: str, count: int) -> None:
        await self.watch.until(lambda: self.count(text) == count)


@pytest.fixture
def backend_log() -> Iterator[LogWatch]:
    logger = logging.getLogger(RedisBackend.__module__)
    watch, level = LogWatch(), logger.level
    logger.addHandler(watch)
    logger.setLevel(logging.DEBUG)
    yield watch
    logger.removeHandler(watch)
    logger.setLevel(level)


@pytest.fixture
def channel() -> str:
    """A channel name of this test's own: the session's Redis is shared."""
    return f"test-{uuid.uuid4().hex}"


@asynccontextmanager
async def started(url: str, **options: Any) -> AsyncIterator[tuple[RedisBackend, Recorder]]:
    backend = RedisBackend(url, prefix=options.pop("prefix", PREFIX), timeout=TIMEOUT, **options)
    recorder = Recorder()
    await backend.start(recorder)
    try:
        yield backend, recorder
    finally:
        await backend.stop()


def envelope(channel: str, text: str) -> Draft:
    """A message for `channel` carrying `text`, as the hub hands it to `publish`."""
    return draft(channel, ORIGIN, "test", json_text(text))


FIRST = Position(1, "0123abcd")


def frame(channel: str, text: str, position: Position = FIRST) -> str:
    """The envelope of `envelope(channel, text)` at `position`, as subscribers receive it."""
    return envelope(channel, text).complete(position)


async def subscribers(redis: Redis, backend: RedisBackend, channel: str) -> int:
    """How many connections Redis says are subscribed to `channel` (PUBSUB NUMSUB)."""
    [(_, count)] = await redis.pubsub_numsub(backend.redis_channel(channel))
    return count


async def test_a_published_message_reaches_the_subscriber(redis_url: str, channel: str) -> None:
    async with started(redis_url) as (backend, recorder):
        await backend.subscribe(channel)
        assert backend.ready() is None
        await backend.publish(channel, envelope(channel, "hello"))
        await recorder.until(lambda: recorder.received(channel) == ["hello"])


async def test_two_processes_share_channels(redis_url: str, channel: str) -> None:
    # Two backends stand for two worker processes: each has its own connections.
    async with (
        started(redis_url) as (first, first_seen),
        started(redis_url) as (second, second_seen),
        create_redis(redis_url) as redis,
    ):
        await first.subscribe(channel)
        await second.subscribe(channel)
        assert await subscribers(redis, first, channel) == 2
        await first.publish(channel, envelope(channel, "from first"))
        await second.publish(channel, envelope(channel, "from second"))
        for seen in (first_seen, second_seen):
            await seen.until(seen.has_received(channel, 2))
            assert sorted(seen.received(channel)) == ["from first", "from second"]


async def test_each_publishers_messages_arrive_in_publish_order(
    redis_url: str, channel: str
) -> None:
    count = 200
    async with (
        started(redis_url) as (subscriber, seen),
        started(redis_url) as (first, _),
        started(redis_url) as (second, _),
    ):
        await subscriber.subscribe(channel)

        async def publish_all(backend: RedisBackend, name: str) -> None:
            for number in range(count):
                await backend.publish(channel, envelope(channel, f"{name} {number}"))

        async with anyio.create_task_group() as publishers:
            publishers.start_soon(publish_all, first, "first")
            publishers.start_soon(publish_all, second, "second")
        await seen.until(seen.has_received(channel, 2 * count))

    for name in ("first", "second"):
        numbers = [int(m.split()[1]) for m in seen.received(channel) if m.startswith(name)]
        assert numbers == list(range(count))
    # One numbering for both publishers, given by Redis: arrival order is offset order.
    positions = seen.positions(channel)
    assert [p.offset for p in positions] == list(range(1, 2 * count + 1))
    assert len({p.epoch for p in positions}) == 1


async def test_subscribe_and_unsubscribe_show_in_pubsub_numsub(
    redis_url: str, channel: str
) -> None:
    other = f"{channel}-other"
    async with started(redis_url) as (backend, recorder), create_redis(redis_url) as redis:
        assert await subscribers(redis, backend, channel) == 0
        await backend.subscribe(channel)
        await backend.subscribe(other)
        assert await subscribers(redis, backend, channel) == 1
        await backend.unsubscribe(channel)
        assert await subscribers(redis, backend, channel) == 0
        assert backend.ready() is None

        # Redis delivers what one connection publishes in order: once `other`'s
        # message is in, one for `channel` would already have arrived.
        await backend.publish(channel, envelope(channel, "after unsubscribe"))
        await backend.publish(other, envelope(other, "still subscribed"))
        await recorder.until(lambda: recorder.received(other) == ["still subscribed"])
        assert recorder.received(channel) == []


async def test_concurrent_subscribes_are_each_confirmed(redis_url: str, channel: str) -> None:
    channels = [f"{channel}-{number}" for number in range(500)]
    async with started(redis_url) as (backend, recorder), create_redis(redis_url) as redis:
        async with anyio.create_task_group() as subscribing:
            for name in channels:
                subscribing.start_soon(backend.subscribe, name)
        assert backend.ready() is None
        counts = await redis.pubsub_numsub(*map(backend.redis_channel, channels))
        assert [count for _, count in counts] == [1] * len(channels)
        await backend.publish(channels[-1], envelope(channels[-1], "last"))
        await recorder.until(recorder.has_received(channels[-1], 1))


async def test_an_idle_subscriber_still_receives_after_longer_than_the_socket_timeout(
    redis_url: str, channel: str, backend_log: LogWatch
) -> None:
    async with started(f"{redis_url}?socket_timeout={URL_SOCKET_TIMEOUT}") as (backend, recorder):
        await backend.subscribe(channel)
        # Not synchronisation: staying idle this long is the property under test.
        await anyio.sleep(IDLE_SECONDS)
        assert backend.ready() is None
        await backend.publish(channel, envelope(channel, "after a quiet spell"))
        await recorder.until(lambda: recorder.received(channel) == ["after a quiet spell"])
    assert (recorder.interruptions, recorder.resumptions) == (0, 0)
    assert backend_log.count("lost Redis") == 0, "the subscriber connection dropped while idle"


async def test_while_redis_is_down_publish_and_subscribe_fail_fast_and_ready_says_why(
    redis_server: RedisServer, channel: str, backend_log: LogWatch
) -> None:
    async with started(redis_server.url, **FAST_RECONNECT) as (backend, _):
        await backend.subscribe(channel)
        redis_server.kill()
        # Whether or not the listener noticed yet: an error within the timeout, never a hang.
        with anyio.fail_after(TIMEOUT), pytest.raises(BroadcastUnavailable):
            await backend.publish(channel, envelope(channel, "into the void"))

        await backend_log.until_count("lost Redis", 1)
        reason = backend.ready()
        assert reason is not None
        assert f"127.0.0.1:{redis_server.port}" in reason
        with anyio.fail_after(TIMEOUT), pytest.raises(BroadcastUnavailable):
            await backend.publish(channel, envelope(channel, "into the void"))
        with anyio.fail_after(TIMEOUT), pytest.raises(BroadcastUnavailable):
            await backend.subscribe(f"{channel}-new")
        # Leaving the block stops the backend while its listener is retrying.

    assert backend_log.count("", level=logging.WARNING) == 1, "one warning per outage"
    assert not any(record.exc_info for record in backend_log.records), "no tracebacks"


async def test_after_redis_restarts_the_listener_resubscribes_resyncs_once_and_delivers(
    redis_server: RedisServer, channel: str, backend_log: LogWatch
) -> None:
    refused = f"{channel}-refused"
    others = [f"{channel}-{number}" for number in range(100)]
    async with started(redis_server.url, **FAST_RECONNECT) as (backend, recorder):
        await backend.subscribe(channel)
        for name in others:
            await backend.subscribe(name)
        for outage in (1, 2):
            redis_server.kill()
            await backend_log.until_count("lost Redis", outage)
            with anyio.fail_after(TIMEOUT), pytest.raises(BroadcastUnavailable):
                await backend.subscribe(refused)
            redis_server.restart()

            await recorder.until(recorder.has_resumed(outage))
            assert backend.ready() is None
            async with create_redis(redis_server.url) as redis:
                assert await subscribers(redis, backend, channel) == 1
                assert await subscribers(redis, backend, refused) == 0
                counts = await redis.pubsub_numsub(*map(backend.redis_channel, others))
                assert [count for _, count in counts] == [1] * len(others)
            await backend.publish(channel, envelope(channel, f"after outage {outage}"))
            await recorder.until(recorder.has_received(channel, outage))
            assert (recorder.interruptions, recorder.resumptions) == (outage, outage)
        assert recorder.received(channel) == ["after outage 1", "after outage 2"]
    assert backend_log.count("reconnected to Redis", level=logging.INFO) == 2


async def test_a_backend_started_while_redis_is_down_connects_once_it_is_up(
    redis_server: RedisServer, channel: str, backend_log: LogWatch
) -> None:
    redis_server.kill()
    async with started(redis_server.url, **FAST_RECONNECT) as (backend, recorder):
        assert backend.ready() is not None
        with pytest.raises(BroadcastUnavailable):
            await backend.subscribe(channel)
        redis_server.restart()
        await backend_log.until_count("listening on Redis", 1)
        assert backend.ready() is None
        await backend.subscribe(channel)
        await backend.publish(channel, envelope(channel, "first light"))
        await recorder.until(lambda: recorder.received(channel) == ["first light"])
    assert (recorder.interruptions, recorder.resumptions) == (0, 0), "no earlier connection"


async def test_a_redis_that_never_answers_cannot_hang_start_or_publish(
    silent_redis_url: str, channel: str
) -> None:
    with anyio.fail_after(TIMEOUT + WAIT):
        async with started(silent_redis_url, **FAST_RECONNECT) as (backend, _):
            reason = backend.ready()
            assert reason is not None
            assert "Timeout" in reason
            with anyio.fail_after(TIMEOUT), pytest.raises(BroadcastUnavailable):
                await backend.publish(channel, envelope(channel, "into the void"))


async def test_stop_ends_the_listener_and_closes_its_connections(
    redis_url: str, channel: str
) -> None:
    tasks_before = asyncio.all_tasks()
    backend = RedisBackend(redis_url, prefix=PREFIX, timeout=TIMEOUT)
    await backend.start(Recorder())
    await backend.subscribe(channel)
    await backend.publish(channel, envelope(channel, "one"))

    await backend.stop()
    await backend.stop()

    assert asyncio.all_tasks() == tasks_before
    assert backend.ready() == "stopped"
    with pytest.raises(BroadcastUnavailable):
        await backend.publish(channel, envelope(channel, "after stop"))
    # Redis handled the subscriber's close before it reads a command from a
    # connection opened afterwards.
    async with create_redis(redis_url) as redis:
        assert await subscribers(redis, backend, channel) == 0


# --- A Redis that others share -----------------------------------------------

# A small limit, so that data just over it is cheap to send.
MAX_DATA = 100


def not_ours(channel: str) -> list[str | bytes]:
    """Publishes on `channel` that the service never sends: each must be dropped."""
    stamped = frame(channel, "x")  # one time stamp for every variant built from it
    good = json.loads(stamped)
    head = frame(channel, "")[:-3]  # up to the data ('""}' is the data and the end)
    return [
        "hello",
        "",
        b"\xff\xfe not UTF-8",
        '{"type": "resync"}',
        json.dumps({"type": "resync", "channel": channel, "origin": "x", "reason": "fake"}),
        "[1, 2, 3]",
        "null",
        frame(f"{channel}-elsewhere", "for another channel"),
        frame(channel, "truncated")[:-1],
        json.dumps(good),  # ours, but not as we write it (spaces)
        json.dumps({**good, "extra": 1}, separators=(",", ":")),
        json.dumps({k: v for k, v in good.items() if k != "sender"}, separators=(",", ":")),
        frame(channel, "x").replace('"offset":1', '"offset":"1"'),
        frame(channel, "x").replace('"offset":1', '"offset":true'),
        frame(channel, "x").replace('"offset":1', '"offset":0'),
        frame(channel, "x", Position(1, "NOT-HEX")),
        frame(channel, "x", Position(1, "")),
        frame(channel, "x").replace('"sender":"test"', '"sender":' + json.dumps("s" * 200)),
        frame(channel, "x").replace('"sender":"test"', '"sender":"<b>"'),
        frame(channel, "x").replace(f'"origin":"{ORIGIN}"', '"origin":"x"'),
        stamped.replace(f'"ts":"{good["ts"]}"', '"ts":"yesterday"'),
        head + "nope}",  # data that is not JSON
        head + "NaN}",
        head + '"a" "b"}',
        frame(channel, "x" * MAX_DATA),  # data of MAX_DATA + 2 bytes (the quotes)
        # Under MAX_DATA characters, over it in bytes of UTF-8.
        head + json.dumps("é" * (MAX_DATA // 2), ensure_ascii=False) + "}",
        frame(channel, "x" * 200 * 1024),
    ]


async def test_only_this_services_envelopes_within_the_size_limit_reach_the_receiver(
    redis_url: str, channel: str, backend_log: LogWatch
) -> None:
    at_limit = "é" * ((MAX_DATA - 2) // 2)  # quoted, exactly MAX_DATA bytes of UTF-8
    at_limit_json = json.dumps(at_limit, ensure_ascii=False)
    assert len(at_limit_json.encode()) == MAX_DATA
    async with (
        started(redis_url, max_data_bytes=MAX_DATA) as (backend, recorder),
        create_redis(redis_url) as redis,
    ):
        await backend.subscribe(channel)
        on_redis = backend.redis_channel(channel)
        for junk in not_ours(channel):
            await redis.publish(on_redis, junk)
        # From one connection, Redis delivers in order: once these are in, the rest was too.
        await redis.publish(on_redis, frame(channel, "ours"))
        at_limit_draft = draft(channel, ORIGIN, "s", at_limit_json)
        await redis.publish(on_redis, at_limit_draft.complete(Position(7, "0123abcd")))
        await recorder.until(recorder.has_received(channel, 2))
    assert recorder.received(channel) == ["ours", at_limit]
    assert [m for c, m, _ in recorder.messages if c != channel] == []
    # Rate-limited: one line for the whole flood, naming the channel.
    assert backend_log.count("dropped", logging.WARNING) == 1
    [line] = [r.getMessage() for r in backend_log.records if "dropped" in r.getMessage()]
    assert repr(channel) in line


async def test_the_prefix_keeps_deployments_on_one_redis_apart(
    redis_url: str, channel: str
) -> None:
    async with (
        started(redis_url, prefix="one") as (one, one_seen),
        started(redis_url, prefix="two") as (two, two_seen),
        create_redis(redis_url) as redis,
    ):
        await one.subscribe(channel)
        await two.subscribe(channel)
        assert one.redis_channel(channel) == f"one:broadcast:{channel}"
        assert await subscribers(redis, one, channel) == 1
        assert await subscribers(redis, two, channel) == 1
        assert (await redis.pubsub_numsub(channel)) == [(channel, 0)]
        await one.publish(channel, envelope(channel, "to one"))
        await two.publish(channel, envelope(channel, "to two"))
        await one_seen.until(one_seen.has_received(channel, 1))
        await two_seen.until(two_seen.has_received(channel, 1))
        # Redis handled "to one" before "to two": had two heard it, it would be in by now.
        assert one_seen.received(channel) == ["to one"]
        assert two_seen.received(channel) == ["to two"]
        # Each keeps its own offsets too.
        assert one_seen.positions(channel)[0].offset == two_seen.positions(channel)[0].offset == 1
        await one.unsubscribe(channel)
        assert await subscribers(redis, one, channel) == 0


async def test_more_commands_at_once_than_connections_wait_for_one_instead_of_failing(
    redis_url: str, channel: str
) -> None:
    # A thousand clients subscribing with `since` after a restart read history
    # all at once; redis-py's default pool fails every command past its 100th.
    async with started(redis_url) as (backend, _):
        reads = [backend.history(f"{channel}-{n}", 0) for n in range(300)]
        publishes = [backend.publish(channel, envelope(channel, str(n))) for n in range(300)]
        results = await asyncio.gather(*reads, *publishes, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures == []
    offsets = sorted(r.offset for r in results[300:] if isinstance(r, Position))
    assert offsets == list(range(1, 301))
