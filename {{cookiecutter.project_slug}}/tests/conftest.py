"""Shared fixtures: settings isolated from the environment, and an app whose lifespan runs."""

from __future__ import annotations

{% if cookiecutter.use_task_queue -%}
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
{%- else -%}
from collections.abc import Callable, Iterator
{%- endif %}
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
{%- if cookiecutter.use_task_queue %}
from saq.queue.redis import RedisQueue
{%- endif %}

from {{ cookiecutter.package_name }} import __main__ as entry_point
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings, get_settings
{%- if cookiecutter.use_task_queue %}
from {{ cookiecutter.package_name }}.tasks.queue import create_queue
{%- endif %}

from .tracing import Recorder
{%- if cookiecutter.use_task_queue %}
from .workers import HEARTBEAT_TIMEOUT
{%- endif %}


# Module scope (anyio's own default), so that a module can share one
# async fixture, such as a live server, across its tests.
@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


{% if cookiecutter.use_redis -%}
@pytest.fixture(scope="session", autouse=True)
def _no_redis_unless_asked() -> Iterator[None]:
    """An app under test uses Redis only when its test hands it a URL.

    CI sets REDIS_URL for the shared test server; `tests.redis_server` read
    it while the tests were collected, before this runs.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("REDIS_URL", raising=False)
        yield


{% endif -%}
@pytest.fixture(scope="session", autouse=True)
def _test_client_host_trusted() -> Iterator[None]:
    """Apps under test also answer `Host: testserver`, which Starlette's TestClient sends.

    Development trusts only the loopback names (TRUSTED_HOSTS); tests of that
    default delete this variable.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRUSTED_HOSTS", "localhost,127.0.0.1,::1,testserver")
        yield


@pytest.fixture
def refusal(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], str]:
    """`refusal(VARIABLE, value)`: the one line the process stops with when the
    variable is set to the value; fails the test unless it is one line naming it."""

    def refuse(variable: str, written: str) -> str:
        monkeypatch.setenv(variable, written)
        monkeypatch.chdir(Path(__file__).parent)  # no developer's .env
        get_settings.cache_clear()
        try:
            with pytest.raises(SystemExit) as exited:
                get_settings()
        finally:
            get_settings.cache_clear()
        message = exited.value.code
        assert isinstance(message, str)
        assert len(message.splitlines()) == 1, message
        assert message.startswith(f"error: {variable}: "), message
        return message

    return refuse


@pytest.fixture
def settings() -> Settings:
    """Defaults only: a developer's `.env` must not change what the tests see."""
    return Settings(_env_file=None)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A client of a fresh app; entering it runs startup, leaving it runs shutdown."""
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def uvicorn_options(monkeypatch: pytest.MonkeyPatch) -> Callable[..., dict[str, Any]]:
    """What `python -m` would pass to `uvicorn.run`, given environment variables (NAME=value)."""

    def options(**environment: str) -> dict[str, Any]:
        passed: dict[str, Any] = {}
        monkeypatch.setattr(uvicorn, "run", lambda app, **kw: passed.update(kw))
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        try:
            entry_point.main([])
        finally:
            get_settings.cache_clear()
        return passed

    return options
{%- if cookiecutter.use_task_queue %}


# The task-queue tests share the session's Redis: each gets a REDIS_PREFIX of
# its own, so its queue, jobs and workers see nothing of another test's.
@pytest.fixture
def queue_settings(redis_url: str) -> Settings:
    """Settings on the session's Redis under a prefix of this test's own."""
    return Settings(
        _env_file=None,
        redis_url=redis_url,
        redis_prefix=f"test-{uuid.uuid4().hex[:12]}",
        redis_timeout=1.0,
        job_heartbeat_timeout=HEARTBEAT_TIMEOUT,
        job_retry_delay=0.1,
        job_retry_max_delay=0.5,
    )


@pytest.fixture
async def queue(queue_settings: Settings) -> AsyncIterator[RedisQueue]:
    """The test's queue, connected."""
    opened = create_queue(queue_settings)
    await opened.connect()
    yield opened
    await opened.disconnect()
{%- endif %}


@pytest.fixture
def recorder() -> Recorder:
    """Spans of the app this test hands `recorder.provider`."""
    return Recorder()
