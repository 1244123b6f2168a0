"""Typed access to the shared resources, as FastAPI dependencies.

`create_app` and the lifespan put each resource on `app.state`; endpoints ask
for it by type (`readiness: ReadinessDep`) and never touch `app.state`.

They are `async def` though nothing here awaits: FastAPI runs a plain `def`
dependency in a worker thread, a thread hop per request (and per WebSocket
connection) for an attribute read.
"""

from __future__ import annotations

from typing import Annotated

{% if cookiecutter.use_lifespan -%}
import httpx
{% endif -%}
from fastapi import Depends, Request
{% if cookiecutter.use_redis -%}
from redis.asyncio import Redis
{% endif -%}
{% if cookiecutter.use_task_queue -%}
from saq.queue.redis import RedisQueue
{% endif -%}
{% if cookiecutter.use_redis -%}
from starlette.exceptions import HTTPException
{% endif -%}
from starlette.requests import HTTPConnection

from .auth.tokens import Authenticator
{% if cookiecutter.use_websockets -%}
from .broadcast.hub import Hub
{% endif -%}
{% if cookiecutter.use_background_tasks and not cookiecutter.use_task_queue -%}
from .jobs import JobRunner
{% endif -%}
from .readiness import Readiness
from .settings import Settings


async def get_settings(connection: HTTPConnection) -> Settings:
    # HTTPConnection, not Request: WebSocket endpoints need the settings too.
    settings: Settings = connection.app.state.settings
    return settings


async def get_authenticator(connection: HTTPConnection) -> Authenticator:
    authenticator: Authenticator = connection.app.state.authenticator
    return authenticator


async def get_readiness(request: Request) -> Readiness:
    readiness: Readiness = request.app.state.readiness
    return readiness
{%- if cookiecutter.use_lifespan %}


async def get_http_client(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient = request.app.state.http_client
    return client
{%- endif %}
{%- if cookiecutter.use_background_tasks and not cookiecutter.use_task_queue %}


async def get_jobs(request: Request) -> JobRunner:
    jobs: JobRunner = request.app.state.jobs
    return jobs
{%- endif %}
{%- if cookiecutter.use_websockets %}


async def get_hub(connection: HTTPConnection) -> Hub:
    hub: Hub = connection.app.state.hub
    return hub
{%- endif %}
{%- if cookiecutter.use_redis %}


async def get_redis(request: Request) -> Redis:
    # Routes that need Redis are served only when REDIS_URL is set (main.py);
    # one that asks for it anyway gets 503, not 500: the service runs without it.
    client: Redis | None = request.app.state.redis
    if client is None:
        raise HTTPException(503, "Redis is not configured (set REDIS_URL)")
    return client
{%- endif %}
{%- if cookiecutter.use_task_queue %}


async def get_queue(request: Request) -> RedisQueue:
    # Like get_redis: the job routes are served only when REDIS_URL is set.
    queue: RedisQueue | None = request.app.state.queue
    if queue is None:
        raise HTTPException(503, "the job queue is not configured (set REDIS_URL)")
    return queue
{%- endif %}


SettingsDep = Annotated[Settings, Depends(get_settings)]
AuthenticatorDep = Annotated[Authenticator, Depends(get_authenticator)]
ReadinessDep = Annotated[Readiness, Depends(get_readiness)]
{%- if cookiecutter.use_lifespan %}
HttpClientDep = Annotated[httpx.AsyncClient, Depends(get_http_client)]
{%- endif %}
{%- if cookiecutter.use_background_tasks and not cookiecutter.use_task_queue %}
JobsDep = Annotated[JobRunner, Depends(get_jobs)]
{%- endif %}
{%- if cookiecutter.use_websockets %}
HubDep = Annotated[Hub, Depends(get_hub)]
{%- endif %}
{%- if cookiecutter.use_redis %}
RedisDep = Annotated[Redis, Depends(get_redis)]
{%- endif %}
{%- if cookiecutter.use_task_queue %}
QueueDep = Annotated[RedisQueue, Depends(get_queue)]
{%- endif %}
