"""What every job receives as `ctx`: SAQ's own entries and the worker's resources."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from saq.types import Context

from ..settings import Settings
{%- if cookiecutter.use_websockets %}
from .progress import JobProgress
{%- endif %}


class JobContext(Context, total=False):
    """What every job receives as `ctx`: SAQ's (`job`, `worker`) and the worker's resources."""

    settings: Settings
    # Replies decoded to str; for idempotency keys and whatever jobs keep in Redis.
    redis: Redis
{%- if cookiecutter.use_websockets %}
    progress: JobProgress
{%- endif %}


# A job: `async def job(ctx: JobContext, **kwargs) -> result`.
JobFunction = Callable[..., Awaitable[Any]]
