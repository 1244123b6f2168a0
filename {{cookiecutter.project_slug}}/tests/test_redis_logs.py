"""No line names the Redis password: not with a wrong one, nor when Redis goes away
and comes back, in either log format, nor when REDIS_URL itself is bad.

The services run as `python -m` against a redis-server that wants a password;
each is started once for the module, and the tests read what it wrote.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

import {{ cookiecutter.package_name }} as package

from .processes import child_with_stdout, exchange, until

if TYPE_CHECKING:  # imported at run time by pytest_plugins, which must come first
    from .redis_server import RedisServer

pytest_plugins = ["tests.redis_server"]

WRONG_PASSWORD = "wrong-password-0123456789abcdef"
FORMATS = ("text", "json")
# Each service: (the password its REDIS_URL has, LOG_FORMAT).
SERVICES = [(password, log_format) for password in ("wrong", "right") for log_format in FORMATS]


def request(method: str, path: str) -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()


async def status_is(port: int, expected: int) -> bool:
    """Whether GET /ready answers `expected`."""
    answer = await exchange(port, request("GET", "/ready"))
    return int(answer.split()[1]) == expected


@pytest.fixture(scope="module")
async def transcripts(
    protected_redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], tuple[list[str], bytes]]:
    """Each service's lines, and its answer to a request that needed Redis."""
    server = protected_redis_server
    assert server.password is not None
    urls = {"right": server.url, "wrong": server.url.replace(server.password, WRONG_PASSWORD)}
    folder = tmp_path_factory.mktemp("redis-logs")
    variables = {
        "HOST": "127.0.0.1",
        "PORT": "0",
        "LOG_LEVEL": "debug",
        "TRUSTED_HOSTS": "127.0.0.1",
        # Quick to notice Redis gone and back.
        "REDIS_TIMEOUT": "0.5",
        "REDIS_RECONNECT_MAX_DELAY": "0.2",
        "REDIS_HEALTH_CHECK_INTERVAL": "0.5",
    }
    answers: dict[tuple[str, str], bytes] = {}
    async with contextlib.AsyncExitStack() as stack:
        services = {
            (password, log_format): await stack.enter_async_context(
                child_with_stdout(
                    folder,
                    *("-m", package.__name__),
                    LOG_FORMAT=log_format,
                    REDIS_URL=urls[password],
                    **variables,
                )
            )
            for password, log_format in SERVICES
        }
        for (password, _), service in services.items():
            await service.wait_listening()
            expected = 200 if password == "right" else 503
            await until(functools.partial(status_is, service.port, expected))
        for run, service in services.items():
            answers[run] = await exchange(service.port, request("POST", "/counters/visits"))
        server.kill()
        for password, log_format in SERVICES:
            if password == "right":
                await until(functools.partial(status_is, services[password, log_format].port, 503))
        server.restart()
        for password, log_format in SERVICES:
            if password == "right":
                await until(functools.partial(status_is, services[password, log_format].port, 200))
        for service in services.values():
            await service.stop()
    return {run: (service.lines, answers[run]) for run, service in services.items()}


@pytest.mark.anyio
@pytest.mark.parametrize("run", SERVICES, ids=" password, ".join)
async def test_no_line_of_a_service_names_the_redis_password(
    transcripts: dict[tuple[str, str], tuple[list[str], bytes]],
    protected_redis_server: RedisServer,
    run: tuple[str, str],
) -> None:
    lines, answer = transcripts[run]
    assert protected_redis_server.password is not None
    for line in lines:
        assert protected_redis_server.password not in line, line
        assert WRONG_PASSWORD not in line, line
        if run[1] == "json":
            json.loads(line)
    # Not vacuous: the failure was logged, with its reason.
    failing = [line for line in lines if "readiness check 'redis' failing" in line]
    assert failing, lines
    expected = "AuthenticationError" if run[0] == "wrong" else "ConnectionError"
    assert expected in failing[0], failing
    assert protected_redis_server.password.encode() not in answer
    assert WRONG_PASSWORD.encode() not in answer


@pytest.mark.parametrize(
    "url",
    [
        "redis://user:s3cret-pw@127.0.0.1:notaport/0",
        # Unescaped "/" and "@" in the password: the URL parses wrong, the line still hides it.
        "redis://user:s3cret/p@ss@127.0.0.1:6379/0?socket_timeout=inf",
        "redis://127.0.0.1:6379/0?password=s3cret-pw&socket_timeout=inf",
    ],
)
def test_a_bad_redis_url_is_one_line_without_its_password(
    refusal: Callable[[str, str], str], url: str
) -> None:
    line = refusal("REDIS_URL", url)
    assert line.startswith("error: REDIS_URL: "), line
    assert "s3cret" not in line, line
    assert "***" in line, line
