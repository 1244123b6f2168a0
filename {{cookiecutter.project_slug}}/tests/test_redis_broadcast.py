"""Broadcast through Redis, end to end: real service processes and sockets, a real redis-server."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx2
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect

from {{ cookiecutter.package_name }}.broadcast.envelope import Position, message_frame
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.redis_client import create_redis
from {{ cookiecutter.package_name }}.settings import Settings

from .live import (
    WAIT,
    Live,
    command,
    connected,
    joined,
    published,
    receive,
    serve,
    subscribed,
)
from .processes import until
from .services import TIMEOUT, ServiceProcess, redis_settings, services

if TYPE_CHECKING:  # imported at run time by pytest_plugins, which must come first
    from .redis_server import RedisServer

pytest_plugins = ["tests.redis_server"]
pytestmark = pytest.mark.anyio

# The readiness checks that fail while Redis is down.
NEEDS_REDIS = ["broadcast", {% if cookiecutter.use_task_queue %}"queue", {% endif %}"redis"]


@pytest.fixture
def channel() -> str:
    """A channel name of this test's own: the session's Redis is shared."""
    return f"test-{uuid.uuid4().hex}"


async def ready(http: httpx2.AsyncClient) -> tuple[int, list[str]]:
    """`/ready`'s status code and the names of its failing checks."""
    response = await http.get("/ready")
    failing: list[str] = response.json()["failing"]
    return response.status_code, failing


def in_redis(redis_url: str, channel: str) -> str:
    """The Redis channel that carries the hub's `channel` for a service on `redis_url`."""
    return redis_settings(redis_url).redis_key("broadcast", channel)


async def subscribers(redis: Redis, channel: str) -> int:
    """How many connections Redis says are subscribed to the Redis `channel` (PUBSUB NUMSUB)."""
    [(_, count)] = await redis.pubsub_numsub(channel)
    return count


# --- Choosing the backend ---------------------------------------------------


async def test_without_redis_url_the_hub_broadcasts_in_memory_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        app = create_app(Settings(_env_file=None))
    assert "REDIS_URL is not set: broadcasting in memory" in caplog.text
    async with (
        serve(app) as live,
        connect(live.ws("/ws")) as ws,
        httpx2.AsyncClient(base_url=live.http(""), timeout=WAIT) as http,
    ):
        await joined(ws, "lobby")
        assert (await published(ws, "lobby", "hello"))["data"] == "hello"
        assert await ready(http) == (200, [])


def test_with_redis_url_the_hub_says_it_broadcasts_through_redis(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        create_app(redis_settings("redis://127.0.0.1:6390/0"))
    assert "broadcasting through Redis at 127.0.0.1:6390" in caplog.text


# --- A Redis that others share ---------------------------------------------


async def test_two_deployments_on_other_database_numbers_do_not_hear_each_other(
    redis_url: str, channel: str
) -> None:
    base = redis_url.rsplit("/", 1)[0]
    async with (
        serve(create_app(redis_settings(f"{base}/1"))) as one,
        serve(create_app(redis_settings(f"{base}/2"))) as two,
        connect(one.ws("/ws")) as on_one,
        connect(two.ws("/ws")) as on_two,
    ):
        await joined(on_one, channel)
        await joined(on_two, channel)
        assert (await published(on_one, channel, "for one"))["data"] == "for one"
        # Redis handled "for one" before this publish: had two heard it, it would come first.
        assert (await published(on_two, channel, "for two"))["data"] == "for two"
        assert (await command(on_one, "ping"))["type"] == "reply"


async def test_what_others_publish_on_the_services_redis_channels_never_reaches_clients(
    redis_url: str, channel: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = redis_settings(redis_url)
    redis_channel = settings.redis_key("broadcast", channel)
    foreign = [
        "hello",
        '{"type":"resync"}',
        json.dumps({"type": "resync", "channel": channel, "origin": "x", "reason": "fake"}),
        json.dumps({"type": "message", "channel": channel, "data": "no offset, origin or ts"}),
        # A message of 200 KiB, past the welcome's limit but otherwise as the service writes it.
        message_frame(channel, Position(1, "0123abcd"), "o", "s", json.dumps("x" * 200 * 1024)),
    ]
    async with (
        serve(create_app(settings)) as live,
        connect(live.ws("/ws")) as ws,
        create_redis(redis_url) as redis,
    ):
        welcome = await joined(ws, channel)
        assert welcome["max_message_size"] == settings.ws_max_message_size
        assert await subscribers(redis, redis_channel) == 1
        for text in foreign:
            await redis.publish(redis_channel, text)
        # Published after them on Redis: the client's next frame, if they were dropped.
        assert (await published(ws, channel, "real"))["data"] == "real"
    # One line for the lot (the log is rate-limited), naming the channel.
    lines = [m for r in caplog.records if "not this service's envelopes" in (m := r.getMessage())]
    assert len(lines) == 1, lines
    assert repr(channel) in lines[0]


# --- Two service processes sharing one Redis --------------------------------


@pytest.fixture(scope="module")
async def two_services(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[list[ServiceProcess]]:
    """Two service processes on the session's Redis, shared by the module's tests
    (each on channels of its own): starting them is most of a test's time."""
    directory = tmp_path_factory.mktemp("services")
    async with services(2, redis_url, directory, REDIS_TIMEOUT=str(TIMEOUT)) as started:
        yield started


async def test_messages_published_on_either_process_reach_clients_of_both_in_publish_order(
    two_services: list[ServiceProcess], channel: str
) -> None:
    first, second = two_services
    for service in two_services:
        assert any("broadcasting through Redis" in line for line in service.lines), service.lines
    count = 25
    # Two publishers per process: a WebSocket client, and HTTP POST.
    total = 4 * count
    async with (
        connect(first.ws("/ws")) as on_first,
        connect(second.ws("/ws")) as on_second,
        httpx2.AsyncClient(timeout=WAIT) as http,
    ):
        welcomes = [await joined(on_first, channel), await joined(on_second, channel)]
        assert welcomes[0]["origin"] != welcomes[1]["origin"]

        async def collect(ws: ClientConnection) -> list[dict[str, Any]]:
            """The next `total` frames but the replies to the client's own publishes."""
            frames: list[dict[str, Any]] = []
            while len(frames) < total:
                frame = await receive(ws)
                if frame["type"] != "reply":
                    frames.append(frame)
            return frames

        async def send_frames(ws: ClientConnection, name: str) -> None:
            # Sent without waiting for each reply, as a busy client would.
            for number in range(count):
                data = {"from": name, "n": number}
                await ws.send(
                    json.dumps({"type": "publish", "id": number, "channel": channel, "data": data})
                )

        async def post(service: ServiceProcess, name: str) -> None:
            url = service.http(f"/channels/{channel}/messages")
            for number in range(count):
                response = await http.post(url, json={"from": name, "n": number})
                assert response.status_code == 202, response.text

        async with asyncio.TaskGroup() as group:
            received = [group.create_task(collect(ws)) for ws in (on_first, on_second)]
            group.create_task(send_frames(on_first, "first-ws"))
            group.create_task(send_frames(on_second, "second-ws"))
            group.create_task(post(first, "first-http"))
            group.create_task(post(second, "second-http"))

    # One numbering across both processes, given by Redis: every subscriber sees
    # offsets 1, 2, 3, ... in order, with no gap and no duplicate.
    for frames in (received[0].result(), received[1].result()):
        assert [frame["offset"] for frame in frames] == list(range(1, total + 1))
        assert len({frame["epoch"] for frame in frames}) == 1
    for frames in (received[0].result(), received[1].result()):
        by_publisher: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for frame in frames:
            assert frame["type"] == "message"
            by_publisher[frame["data"]["from"]].append(frame)
        assert sorted(by_publisher) == ["first-http", "first-ws", "second-http", "second-ws"]
        for name, messages in by_publisher.items():
            assert [m["data"]["n"] for m in messages] == list(range(count)), name
            offsets = [m["offset"] for m in messages]
            assert offsets == sorted(offsets), name
            [origin] = {m["origin"] for m in messages}
            assert origin == welcomes[0 if name.startswith("first") else 1]["origin"]


async def test_one_connection_on_three_channels_gets_each_from_the_other_process_until_it_leaves(
    two_services: list[ServiceProcess], channel: str, redis_url: str
) -> None:
    first, second = two_services
    red, green, blue = (f"{channel}-{colour}" for colour in ("red", "green", "blue"))
    async with (
        connect(first.ws("/ws")) as listener,
        connect(second.ws("/ws")) as publisher,
        httpx2.AsyncClient(timeout=WAIT) as http,
        create_redis(redis_url) as redis,
    ):
        await joined(listener, red, green, blue)
        publisher_welcome = await connected(publisher)  # subscribed to nothing

        async def publish(target: str, via: str) -> None:
            """Publish on the second process; returns once Redis has the message."""
            data = {"on": target, "via": via}
            if via == "ws":
                reply = await command(publisher, "publish", channel=target, data=data)
                assert reply["type"] == "reply", reply
            else:
                url = second.http(f"/channels/{target}/messages")
                response = await http.post(url, json=data)
                assert response.status_code == 202, response.text

        # One after another, so Redis, and then the listener, see them in this order.
        for name in (red, green, blue):
            await publish(name, "ws")
            await publish(name, "http")
        frames = [await receive(listener) for _ in range(6)]
        assert [(f["type"], f["channel"], f["data"]) for f in frames] == [
            ("message", name, {"on": name, "via": via})
            for name in (red, green, blue)
            for via in ("ws", "http")
        ]
        assert [f["sender"] for f in frames] == [publisher_welcome["client"], "http"] * 3
        assert {f["origin"] for f in frames} == {publisher_welcome["origin"]}

        # One subscription in Redis per channel, the first process's: the
        # publisher subscribed to none.
        for name in (red, green, blue):
            assert await subscribers(redis, in_redis(redis_url, name)) == 1
        left = await command(listener, "unsubscribe", channel=green)
        assert left == {"type": "reply", "id": left["id"], "channel": green}
        assert await subscribers(redis, in_redis(redis_url, green)) == 0
        await publish(green, "ws")
        await publish(green, "http")
        # Published after green's: had either reached the listener, it would come first.
        await publish(blue, "ws")
        last = await receive(listener)
        assert (last["channel"], last["data"]) == (blue, {"on": blue, "via": "ws"})

    # The connection closed: the first process lets go of its channels in Redis.
    async with create_redis(redis_url) as redis:
        await until(lambda: _none_subscribed(redis, [red, green, blue]))


async def _none_subscribed(redis: Redis, channels: list[str]) -> bool:
    return all(count == 0 for _, count in await redis.pubsub_numsub(*channels))


# --- One process, through a Redis outage ------------------------------------


async def test_through_a_redis_outage_clients_stay_connected_are_told_to_resync_and_receive_again(
    redis_server: RedisServer, channel: str
) -> None:
    other = f"{channel}-other"
    async with (
        serve(create_app(redis_settings(redis_server.url))) as live,
        connect(live.ws("/ws")) as watcher,
        connect(live.ws("/ws")) as talker,
        httpx2.AsyncClient(base_url=live.http(""), timeout=WAIT) as http,
    ):
        await joined(watcher, channel)
        await joined(talker, other)
        assert await ready(http) == (200, [])

        redis_server.kill()
        await until(lambda: _failing_are(http, NEEDS_REDIS))
        async with asyncio.timeout(2 * TIMEOUT):
            refused = await http.post(f"/channels/{channel}/messages", json="lost")
            error = await command(talker, "publish", channel=other, data="lost too")
        assert refused.status_code == 503
        assert refused.json()["detail"].startswith("broadcast unavailable")
        assert (error["type"], error["code"]) == ("error", "unavailable")
        # Still connected: each connection answers a ping command.
        for ws in (watcher, talker):
            assert (await command(ws, "ping"))["type"] == "reply"

        redis_server.restart()
        for ws, name in ((watcher, channel), (talker, other)):
            resync = await receive(ws)
            assert (resync["type"], resync["channel"]) == ("resync", name)
        # The resync comes once every channel in use is subscribed again.
        assert await ready(http) == (200, [])
        accepted = await http.post(f"/channels/{channel}/messages", json="after")
        assert accepted.status_code == 202
        assert (await receive(watcher))["data"] == "after"
        assert (await published(talker, other, "after too"))["data"] == "after too"


async def _failing_are(http: httpx2.AsyncClient, names: list[str]) -> bool:
    return await ready(http) == (503, names)


async def test_a_service_started_while_redis_is_down_serves_and_broadcasts_once_it_is_up(
    redis_server: RedisServer, channel: str
) -> None:
    redis_server.kill()
    async with (
        serve(create_app(redis_settings(redis_server.url))) as live,
        httpx2.AsyncClient(base_url=live.http(""), timeout=WAIT) as http,
    ):
        assert (await http.get("/health")).status_code == 200
        assert await ready(http) == (503, NEEDS_REDIS)
        async with connect(live.ws("/ws")) as ws:
            # Connecting needs no backend; subscribing does, and is refused until it is up.
            await connected(ws)
            refused = await command(ws, "subscribe", channel=channel)
            assert (refused["type"], refused["code"]) == ("error", "unavailable")
            assert refused["reason"].startswith("broadcast unavailable")

            redis_server.restart()
            await until(lambda: _is_ready(http))
            await subscribed(ws, channel)
            assert (await published(ws, channel, "hello"))["data"] == "hello"


async def _is_ready(http: httpx2.AsyncClient) -> bool:
    return (await ready(http))[0] == 200


# --- Subscriptions, counted through the hub ---------------------------------


async def test_a_channel_is_subscribed_once_per_process_and_released_after_its_last_client(
    redis_url: str, channel: str
) -> None:
    async with (
        serve(create_app(redis_settings(redis_url))) as live,
        create_redis(redis_url) as redis,
    ):
        async with connect(live.ws("/ws")) as first:
            await joined(first, channel)
            assert await subscribers(redis, in_redis(redis_url, channel)) == 1
            async with connect(live.ws("/ws")) as second:
                await joined(second, channel)
                assert await subscribers(redis, in_redis(redis_url, channel)) == 1
            await until(lambda: _local_clients(live, channel, 1))
            assert await subscribers(redis, in_redis(redis_url, channel)) == 1
        await until(lambda: _subscribers_are(redis, in_redis(redis_url, channel), 0))


async def _local_clients(live: Live, channel: str, count: int) -> bool:
    return live.hub.stats().channels.get(channel, 0) == count


async def _subscribers_are(redis: Redis, channel: str, count: int) -> bool:
    return await subscribers(redis, channel) == count
