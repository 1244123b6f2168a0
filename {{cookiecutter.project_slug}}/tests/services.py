"""Service processes for tests: `python -m <package>` children sharing one Redis.

What spans processes (one numbering of a channel's messages, recovery of
what another process published) is tested with these, not with two apps in
one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import {{ cookiecutter.package_name }} as package
from {{ cookiecutter.package_name }}.settings import Settings

from .live import WAIT

# How long a service process may take to start: two boot at once, on a busy machine too.
STARTUP_WAIT = 30.0


class ServiceProcess:
    """`python -m <package>` in a child process: its own app, event loop and Redis connections.

    `environment` adds to (or overrides) its environment variables.
    """

    def __init__(self, redis_url: str, directory: Path, **environment: str) -> None:
        source = str(Path(inspect.getfile(package)).parent.parent)
        path = os.pathsep.join(filter(None, (source, os.environ.get("PYTHONPATH"))))
        self._env = {
            **os.environ,
            "PYTHONPATH": path,
            "PYTHONUNBUFFERED": "1",
            "HOST": "127.0.0.1",
            "PORT": "0",  # uvicorn picks a free one and logs it
            "LOG_LEVEL": "info",
            "SHUTDOWN_TIMEOUT": "5",
            "REDIS_URL": redis_url,
            **environment,
        }
        # Not the project folder: a developer's .env must not reach the service.
        self._directory = directory
        self._process: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []
        self.port = 0

    async def spawn(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            package.__name__,
            cwd=self._directory,
            env=self._env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )

    @property
    def _output(self) -> asyncio.StreamReader:
        assert self._process is not None
        assert self._process.stdout is not None
        return self._process.stdout

    async def _read_line(self) -> bool:
        """Record the next line of output; False at its end."""
        line = await self._output.readline()
        if not line:
            return False
        self.lines.append(line.decode(errors="replace").rstrip())
        return True

    async def wait_listening(self) -> None:
        """Return once uvicorn listens (after the app's startup); fail if it exits or is slow."""
        listening = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STARTUP_WAIT):
                while await self._read_line():
                    found = listening.search(self.lines[-1])
                    if found:
                        self.port = int(found[1])
                        return
        pytest.fail("the service did not start:\n" + "\n".join(self.lines))

    # Between wait_listening and stop the output waits in the pipe (64 KiB on
    # Linux), which holds far more than these tests make the service log.

    async def stop(self) -> None:
        """SIGTERM, as an orchestrator would, and read its output to the end; SIGKILL after WAIT."""
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(WAIT):
                while await self._read_line():
                    pass
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()

    async def restart(self) -> None:
        """SIGTERM, then start again on the same port, for clients to come back to;
        returns once it listens again."""
        await self.stop()
        self._env["PORT"] = str(self.port)
        await self.spawn()
        await self.wait_listening()

    def ws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def http(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextlib.asynccontextmanager
async def services(
    count: int, redis_url: str, directory: Path, **environment: str
) -> AsyncIterator[list[ServiceProcess]]:
    """`count` service processes on `redis_url`, booted at once; stopped after the block."""
    started = [ServiceProcess(redis_url, directory, **environment) for _ in range(count)]
    try:
        for service in started:
            await service.spawn()
        for service in started:
            await service.wait_listening()
        yield started
    finally:
        for service in started:
            await service.stop()


# The service's Redis timeout in these tests: a publish during an outage must fail within it.
TIMEOUT = 1.0
# Reconnect quickly after an outage, so the tests that play one stay short.
FAST_RECONNECT = 0.2


def redis_settings(redis_url: str, **options: Any) -> Settings:
    """Settings for an app on `redis_url` that fails and reconnects quickly; `options` on top."""
    defaults = {"redis_timeout": TIMEOUT, "redis_reconnect_max_delay": FAST_RECONNECT}
    return Settings(_env_file=None, redis_url=redis_url, **(defaults | options))
