"""The managed Redis client against a real redis-server: its endpoint, `/ready`, outages."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from redis import Redis

from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import PROJECT_SLUG, Settings

from .documented import assert_documented

if TYPE_CHECKING:  # imported at run time by pytest_plugins, which must come first
    from .redis_server import RedisServer

pytest_plugins = ["tests.redis_server"]

# Every wait on a condition fails after this many seconds.
WAIT = 10.0
# Short, so that the tests which play a hung Redis stay short.
TIMEOUT = 0.5


@pytest.fixture(autouse=True)
def _fast_reconnect(monkeypatch: pytest.MonkeyPatch) -> None:
    # With WebSockets, the broadcast listener reconnects too; /ready waits for it.
    # (Without, the app ignores the variable.)
    monkeypatch.setenv("REDIS_RECONNECT_MAX_DELAY", "0.2")


@pytest.fixture
def counter() -> str:
    """A counter name of this test's own: the session's Redis is shared."""
    return f"test-{uuid.uuid4().hex}"


def served(redis_url: str | None) -> TestClient:
    settings = Settings(_env_file=None, redis_url=redis_url, redis_timeout=TIMEOUT)
    return TestClient(create_app(settings))


def ready(client: TestClient) -> tuple[int, list[str]]:
    """`/ready`'s status code and the names of its failing checks."""
    response = client.get("/ready")
    failing: list[str] = response.json()["failing"]
    return response.status_code, failing


def wait_until_ready(client: TestClient) -> None:
    """Poll `/ready` until it answers 200; fail after WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while (outcome := ready(client))[0] != 200:
        if time.monotonic() > deadline:
            pytest.fail(f"/ready still {outcome} after {WAIT:g}s")
        time.sleep(0.05)  # between polls of the condition, not in place of one


@pytest.fixture
def shared_counter(redis_url: str, counter: str) -> Iterator[str]:
    """A counter on the session's Redis (maybe yours, through REDIS_URL): deleted afterwards."""
    yield counter
    with Redis.from_url(redis_url) as redis:
        redis.delete(Settings(_env_file=None, redis_url=redis_url).redis_key("counters", counter))


def test_a_counter_counts_in_redis(redis_url: str, shared_counter: str) -> None:
    counter = shared_counter
    with served(redis_url) as client:
        first = client.post(f"/counters/{counter}")
        second = client.post(f"/counters/{counter}")
        schema = client.get("/openapi.json").json()
    assert (first.status_code, first.json()) == (200, {"name": counter, "value": 1})
    assert_documented(schema, "POST", "/counters/{name}", first)
    assert second.json() == {"name": counter, "value": 2}
    with TestClient(create_app(Settings(_env_file=None, redis_url=redis_url))) as client:
        # Another app, as another process would be: the count lives in Redis.
        assert client.post(f"/counters/{counter}").json()["value"] == 3


def test_the_counter_is_a_key_under_the_prefix(redis_url: str, shared_counter: str) -> None:
    with served(redis_url) as client:
        assert client.post(f"/counters/{shared_counter}").status_code == 200
    key = Settings(_env_file=None, redis_url=redis_url).redis_key("counters", shared_counter)
    assert key.endswith(f":counters:{shared_counter}")
    with Redis.from_url(redis_url) as redis:
        assert redis.get(key) == b"1"
        assert redis.exists(f"counters:{shared_counter}", shared_counter) == 0


@pytest.mark.parametrize(
    ("url", "database"),
    [
        ("redis://localhost:6379", 0),
        ("redis://localhost:6379/0", 0),
        ("redis://localhost/7", 7),
        ("rediss://user:secret@redis.example.com:6380/15", 15),
        ("redis://localhost:6379?db=3", 3),
        ("unix:///run/redis.sock?db=2", 2),
        ("unix:///run/redis.sock", 0),
    ],
)
def test_without_redis_prefix_names_carry_the_project_and_the_database_number(
    url: str, database: int
) -> None:
    # Database numbers do not separate pub/sub channels; the prefix does.
    settings = Settings(_env_file=None, redis_url=url)
    assert settings.redis_key("counters", "a") == f"{PROJECT_SLUG}:{database}:counters:a"


def test_redis_prefix_replaces_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PREFIX", "billing:prod")
    settings = Settings(_env_file=None, redis_url="redis://localhost/4")
    assert settings.redis_key("broadcast", "lobby") == "billing:prod:broadcast:lobby"


def test_a_bad_counter_name_is_422(redis_url: str) -> None:
    with served(redis_url) as client:
        assert client.post("/counters/-starts-with-a-dash").status_code == 422
        assert client.post(f"/counters/{'x' * 65}").status_code == 422


def test_ready_checks_redis_with_a_ping(redis_url: str) -> None:
    with served(redis_url) as client:
        response = client.get("/ready")
    assert response.status_code == 200
    assert response.json()["checks"]["redis"] == "ok"


def test_without_redis_url_the_service_runs_and_offers_no_counters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO), served(None) as client:
        response = client.post("/counters/visits")
        ready_response = client.get("/ready")
        schema = client.get("/openapi.json").json()
    # Not a 503 to call: a client generated from the schema has no such route.
    assert response.status_code == 404
    assert not [path for path in schema["paths"] if path.startswith("/counters")]
    assert ready_response.status_code == 200
    assert "redis" not in ready_response.json()["checks"]
    assert "REDIS_URL is not set" in caplog.text


def test_an_empty_redis_url_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    # `.env.example` has REDIS_URL= (the default: none).
    monkeypatch.setenv("REDIS_URL", "")
    assert Settings(_env_file=None).redis_url is None


def test_a_redis_url_that_names_no_redis_fails_naming_the_variable() -> None:
    with pytest.raises(ValidationError, match=r"redis_url[\s\S]*redis://, rediss:// or unix://"):
        Settings(_env_file=None, redis_url="localhost:6379")


def test_ready_is_503_naming_redis_while_it_is_down_and_200_once_it_is_back(
    redis_server: RedisServer, counter: str
) -> None:
    with served(redis_server.url) as client:
        assert ready(client) == (200, [])
        redis_server.kill()
        status, failing = ready(client)
        assert status == 503
        assert "redis" in failing
        refused = client.post(f"/counters/{counter}")
        assert refused.status_code == 503
        assert refused.json()["detail"].startswith("Redis unavailable: ConnectionError")
        assert_documented(client.get("/openapi.json").json(), "POST", "/counters/{name}", refused)
        redis_server.restart()
        wait_until_ready(client)
        assert client.post(f"/counters/{counter}").json()["value"] == 1


def test_the_service_starts_while_redis_is_down_and_recovers_when_it_comes_up(
    redis_server: RedisServer, counter: str
) -> None:
    redis_server.kill()
    with served(redis_server.url) as client:
        assert client.get("/health").status_code == 200
        status, failing = ready(client)
        assert status == 503
        assert "redis" in failing
        redis_server.restart()
        wait_until_ready(client)
        assert client.post(f"/counters/{counter}").json()["value"] == 1


@pytest.mark.timeout(10)  # a hang fails here, not at the suite's outer bound
def test_a_redis_that_never_answers_costs_a_request_its_timeout_not_a_hang(
    silent_redis_url: str, counter: str
) -> None:
    with served(silent_redis_url) as client:
        response = client.post(f"/counters/{counter}")
        status, failing = ready(client)
    assert response.status_code == 503
    assert "Timeout" in response.json()["detail"]
    assert status == 503
    assert "redis" in failing
