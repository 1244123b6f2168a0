"""A managed Redis client for the service's own use (caches, counters, rate limits).

`create_redis` builds one client (a connection pool) to open for the app's
lifetime, `redis_check` turns it into a readiness check, and `managed_redis`
does both for the lifespan, from the settings. Commands have a short
timeout, so a Redis outage makes requests fail fast instead of hanging them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from .readiness import Check, Readiness
from .settings import Settings

logger = logging.getLogger(__name__)


def create_redis(url: str, *, timeout: float = 2.0, max_connections: int = 50) -> Redis:
    """A client for `url` (redis://, rediss:// or unix://); use it as `async with` to close it.

    It connects on first use, so Redis being down does not fail startup;
    `redis_check` reports it instead. Replies are decoded to `str`. At most
    `max_connections` commands run at once; more wait up to `timeout` seconds
    for a connection (redis-py's default pool would fail them at once).
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        # Explicit, because redis-py's defaults differ: `Redis()` retries 10
        # times with backoff (seconds of waiting while Redis is down),
        # `from_url` not at all (a request fails on a pooled connection that a
        # Redis restart closed). One immediate retry, on a connection error only.
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )
    return Redis.from_pool(pool)


def redis_check(client: Redis, timeout: float = 1.0) -> Check:
    """A readiness check that wants a PONG from `client` within `timeout` seconds."""

    async def check() -> str | None:
        try:
            async with asyncio.timeout(timeout):
                await client.ping()
        except TimeoutError:
            return f"no PONG within {timeout:g}s"
        except RedisError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    return check


@asynccontextmanager
async def managed_redis(settings: Settings, readiness: Readiness) -> AsyncIterator[Redis | None]:
    """The app's client for `REDIS_URL`, checked by `/ready` while open; closed on exit.

    Yields None, and says so in the log, when `REDIS_URL` is not set: the
    routes that need Redis are then not served (see `main.create_app`).
    """
    if settings.redis_url is None:
        logger.info("REDIS_URL is not set: no Redis client, and no routes that need one")
        yield None
        return
    async with create_redis(settings.redis_url, timeout=settings.redis_timeout) as client:
        readiness.add("redis", redis_check(client, timeout=settings.redis_timeout))
        try:
            yield client
        finally:
            readiness.remove("redis")
