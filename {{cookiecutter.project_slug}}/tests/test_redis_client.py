"""The managed Redis client and its readiness check, against a real redis-server."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import anyio
import pytest

from {{ cookiecutter.package_name }}.redis_client import create_redis, redis_check

if TYPE_CHECKING:  # imported at run time by pytest_plugins, which must come first
    from .redis_server import RedisServer

pytest_plugins = ["tests.redis_server"]
pytestmark = pytest.mark.anyio


async def test_replies_are_strings(redis_url: str) -> None:
    key = f"test-{uuid.uuid4().hex}"
    async with create_redis(redis_url) as redis:
        await redis.set(key, "value", ex=60)
        assert await redis.get(key) == "value"


async def test_check_passes_while_redis_answers(redis_url: str) -> None:
    async with create_redis(redis_url) as redis:
        assert await redis_check(redis)() is None


async def test_check_names_the_error_when_redis_is_down(redis_server: RedisServer) -> None:
    async with create_redis(redis_server.url) as redis:
        redis_server.kill()
        with anyio.fail_after(2):
            reason = await redis_check(redis)()
    assert reason is not None
    assert "ConnectionError" in reason


async def test_check_gives_up_on_a_redis_that_never_answers(silent_redis_url: str) -> None:
    async with create_redis(silent_redis_url, timeout=5) as redis:
        with anyio.fail_after(2):
            reason = await redis_check(redis, timeout=0.2)()
    assert reason == "no PONG within 0.2s"


async def test_a_command_after_a_redis_restart_succeeds(redis_server: RedisServer) -> None:
    async with create_redis(redis_server.url) as redis:
        assert await redis.ping()
        redis_server.kill()
        redis_server.restart()
        # The pooled connection died with the old server; the client must not pass that on.
        assert await redis.ping()
