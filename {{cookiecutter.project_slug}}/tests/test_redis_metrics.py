"""The metrics of Redis outages: reconnects, channels recovered or told to resync, readiness.

A real redis-server per test (tests/redis_server.py), staged as in
test_redis_history.py: the service's pub/sub connection killed, or the
server killed and started again without its data.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import httpx2
import pytest
from websockets.asyncio.client import connect

from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.redis_client import create_redis

from .live import Live, joined, receive, serve
from .processes import until
from .scrape import Key, scraped, value
from .services import redis_settings

if TYPE_CHECKING:  # imported at run time by pytest_plugins, which must come first
    from .redis_server import RedisServer

pytest_plugins = ["tests.redis_server"]
pytestmark = pytest.mark.anyio


async def scrape(live: Live) -> dict[Key, float]:
    return await scraped(live.http("/metrics"))


async def publish(live: Live, channel: str, data: object) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.post(live.http(f"/channels/{channel}/messages"), json=data)
    assert response.status_code == 202, response.text


async def test_a_lost_pubsub_connection_counts_a_reconnect_and_a_recovered_channel(
    redis_server: RedisServer,
) -> None:
    channel = f"metrics-{uuid.uuid4().hex}"
    async with (
        serve(create_app(redis_settings(redis_server.url))) as live,
        connect(live.ws("/ws")) as watcher,
        create_redis(redis_server.url) as redis,
    ):
        await joined(watcher, channel)
        await publish(live, channel, 1)
        assert (await receive(watcher))["data"] == 1
        before = await scrape(live)
        assert await redis.client_kill_filter(_type="pubsub") == 1

        async def counted(name: str) -> bool:
            return value(await scrape(live), name) == value(before, name) + 1

        await until(lambda: counted("redis_reconnects_total"))
        await until(lambda: counted("recoveries_total"))
        assert value(await scrape(live), "resyncs_total") == value(before, "resyncs_total")


async def test_a_redis_that_lost_its_data_counts_a_resync_and_readiness_follows_it(
    redis_server: RedisServer,
) -> None:
    channel = f"metrics-{uuid.uuid4().hex}"
    async with (
        serve(create_app(redis_settings(redis_server.url))) as live,
        connect(live.ws("/ws")) as watcher,
    ):
        await joined(watcher, channel)
        await publish(live, channel, 1)
        assert (await receive(watcher))["data"] == 1
        before = await scrape(live)
        assert value(before, "backend_ready") == 1
        redis_server.kill()

        async def ready_is(expected: float) -> bool:
            return value(await scrape(live), "backend_ready") == expected

        await until(lambda: ready_is(0))
        redis_server.restart()
        assert (await receive(watcher))["type"] == "resync"
        await until(lambda: ready_is(1))
        after = await scrape(live)
        for name in ("resyncs_total", "redis_reconnects_total"):
            assert value(after, name) == value(before, name) + 1, name
        assert value(after, "recoveries_total") == value(before, "recoveries_total")
