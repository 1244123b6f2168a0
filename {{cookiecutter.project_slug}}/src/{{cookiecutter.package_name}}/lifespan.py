"""Opens the shared resources at startup and closes them, in reverse, at shutdown.

Each resource enters one `AsyncExitStack`, so a failure while starting
closes whatever was already open, and shutdown needs no bookkeeping.
Resources land on `app.state`; endpoints reach them through `deps`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI

from .readiness import Check
{% if cookiecutter.use_redis -%}
from .redis_client import managed_redis
{% endif -%}
from .settings import Settings
{%- if cookiecutter.use_task_queue %}
from .tasks.queue import managed_queue
{%- endif %}

logger = logging.getLogger(__name__)


def upstream_check(client: httpx.AsyncClient, url: str) -> Check:
    """A readiness check that GETs `url` and wants a 2xx answer."""

    async def check() -> str | None:
        response = await client.get(url)
        return None if response.is_success else f"HTTP {response.status_code}"

    return check


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    async with AsyncExitStack() as stack:
        app.state.http_client = await stack.enter_async_context(
            httpx.AsyncClient(timeout=settings.http_timeout)
        )
        # Named by position: /ready is public, and a URL may carry credentials.
        for number, url in enumerate(settings.upstream_urls, start=1):
            name = f"upstream {number}"
            app.state.readiness.add(name, upstream_check(app.state.http_client, url))
{%- if cookiecutter.use_redis %}
        app.state.redis = await stack.enter_async_context(
            managed_redis(settings, app.state.readiness)
        )
{%- endif %}
{%- if cookiecutter.use_task_queue %}
        app.state.queue = await stack.enter_async_context(
            managed_queue(settings, app.state.readiness)
        )
{%- endif %}
{%- if cookiecutter.use_websockets %}
        await app.state.hub.start()
        stack.push_async_callback(app.state.hub.stop, settings.shutdown_timeout)
{%- endif %}
{%- if cookiecutter.use_background_tasks and not cookiecutter.use_task_queue %}
        stack.push_async_callback(app.state.jobs.drain, settings.shutdown_timeout)
{%- endif %}
        logger.info("startup complete: shared resources open")
        yield
        logger.info("shutdown: closing shared resources")
    logger.info("shutdown complete: shared resources closed")
