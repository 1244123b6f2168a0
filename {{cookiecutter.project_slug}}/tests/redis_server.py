"""Fixtures for a real Redis: a shared server for the session, and servers a test may kill.

`redis_url` is the shared one: `REDIS_URL` when set (a CI service, your own
server), else a local `redis-server` started for the session. `redis_server`
is a test's own local server, which it may kill and restart on the same port
to play an outage; it always needs the `redis-server` binary, and so does
`protected_redis_server`, a server that wants a password (`--requirepass`). Without one,
the tests fail and say how to get it: they never skip. `silent_redis_url`
plays a Redis that hangs: it accepts connections and never answers.

Load it from a test module with `pytest_plugins = ["tests.redis_server"]`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# How long a starting server may take to answer PING before the test fails.
STARTUP_TIMEOUT = 10.0
# How many fresh ports to try when another process takes ours first.
PORT_ATTEMPTS = 3

# Read when the plugin loads, during collection: the conftest then removes
# REDIS_URL from the environment, so that apps under test use Redis only when
# a test hands them a URL.
EXTERNAL_REDIS_URL = os.environ.get("REDIS_URL")

HOW_TO_GET_REDIS = (
    "these tests need a real Redis: install redis-server "
    "(`apt-get install redis-server`, `brew install redis`)"
)


class RedisServer:
    """A `redis-server` process on a loopback port that stays the same across restarts."""

    def __init__(self, executable: str, directory: Path, password: str | None = None) -> None:
        self._executable = executable
        # Clients must AUTH with it (`requirepass`); the URL carries it.
        self.password = password
        self._directory = directory
        self._process: subprocess.Popen[bytes] | None = None
        self.port = _free_port()
        # Whether it keeps its data across a restart: an append-only file, each
        # write synced before its reply (Redis's most durable setting).
        self.persistent = False

    @property
    def url(self) -> str:
        credentials = f"default:{self.password}@" if self.password is not None else ""
        return f"redis://{credentials}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server on its port; returns once it answers PING, else fails the test."""
        if self._process is not None:
            raise RuntimeError("redis-server is already running")
        log = self._directory / "redis.log"
        with (self._directory / "stderr.log").open("ab") as stderr:
            self._process = subprocess.Popen(
                [
                    self._executable,
                    *("--port", str(self.port), "--bind", "127.0.0.1"),
                    *("--save", "", "--appendonly", "yes" if self.persistent else "no"),
                    *("--appendfsync", "always"),
                    *("--dir", str(self._directory), "--logfile", str(log)),
                    *(("--requirepass", self.password) if self.password is not None else ()),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _answers_ping(self.port, self.password):
            if self._process.poll() is not None:
                self._process = None
                raise ServerExited(self._logs())
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"redis-server did not answer PING within {STARTUP_TIMEOUT:g}s")
            time.sleep(0.01)  # poll interval of the deadline loop above

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash or a lost host would."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Start the server again on the same port (after `kill`)."""
        self.start()

    def stop(self) -> None:
        """Stop the server gracefully; kill it if it does not exit promptly."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _logs(self) -> str:
        return "\n".join(
            path.read_text(errors="replace")
            for path in (self._directory / "stderr.log", self._directory / "redis.log")
            if path.exists()
        )


class ServerExited(Exception):
    """redis-server exited while starting (for example, its port was taken)."""


def _free_port() -> int:
    # The kernel picks a free port; a race with another process is possible,
    # so starting the server retries with a new port (see `_started`). Not
    # processes.free_port: the template's own suite loads this file alone,
    # outside the package (its tests/conftest.py), for its Redis.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers_ping(port: int, password: str | None = None) -> bool:
    # Inline commands; with a password, AUTH's +OK comes before the +PONG.
    auth = b"" if password is None else f"AUTH {password}\r\n".encode()
    expected = b"+PONG" if password is None else b"+OK\r\n+PONG"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(auth + b"PING\r\n")
            answer = b""
            while len(answer) < len(expected) and (received := connection.recv(64)):
                answer += received
            return answer.startswith(expected)
    except OSError:
        return False


def _executable() -> str:
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.fail(f"{HOW_TO_GET_REDIS}, or set REDIS_URL", pytrace=False)
    return executable


def _started(directory: Path, password: str | None = None) -> RedisServer:
    """A running local server, on a fresh port if the first one turns out to be taken."""
    logs = ""
    for _ in range(PORT_ATTEMPTS):
        server = RedisServer(_executable(), directory, password)
        try:
            server.start()
        except ServerExited as exited:
            logs = str(exited)
            continue
        return server
    pytest.fail(f"redis-server would not start:\n{logs}", pytrace=False)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis for the whole session: REDIS_URL when set, else a local redis-server.

    Tests share it, so each should use channel and key names of its own.
    """
    if EXTERNAL_REDIS_URL:
        yield EXTERNAL_REDIS_URL
    else:
        server = _started(tmp_path_factory.mktemp("redis"))
        yield server.url
        server.stop()


@pytest.fixture
def silent_redis_url() -> Iterator[str]:
    """The URL of a port that accepts connections and never answers: a hung Redis."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A local redis-server of this test's own, which it may kill and restart."""
    if shutil.which("redis-server") is None:
        pytest.fail(
            f"{HOW_TO_GET_REDIS}: tests that kill Redis cannot use REDIS_URL", pytrace=False
        )
    server = _started(tmp_path)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def protected_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A local redis-server that wants a password, shared by a module; it may kill it."""
    if shutil.which("redis-server") is None:
        pytest.fail(f"{HOW_TO_GET_REDIS}: these tests start their own", pytrace=False)
    server = _started(tmp_path_factory.mktemp("redis"), password=secrets.token_hex(16))
    yield server
    server.stop()
