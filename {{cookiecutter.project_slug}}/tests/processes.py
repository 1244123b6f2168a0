"""Child processes for tests: the service started as its users start it, its log read live.

For what only a real process shows: what reaches stderr under each way of
serving, and what a signal does.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import {{ cookiecutter.package_name }} as package
from {{ cookiecutter.package_name }}.settings import Settings

# Seconds a child may take to start, to log a line, or to stop.
WAIT = 30.0
LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


def free_port() -> int:
    """A TCP port nothing listens on now, on 127.0.0.1 (another process may take it
    before the caller binds it: callers that cannot retry accept that race)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def environment(**variables: str) -> dict[str, str]:
    """This process's environment without the service's own variables, plus `variables`,
    with the package importable."""
    source = str(Path(inspect.getfile(package)).parent.parent)
    ours = set(map(str.upper, Settings.model_fields))
    env = {name: value for name, value in os.environ.items() if name not in ours}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (source, os.environ.get("PYTHONPATH"))))
    env["PYTHONUNBUFFERED"] = "1"
    return {**env, **variables}


class Child:
    """A running `python *args`; `lines` holds what it wrote to stderr so far (and to
    stdout, when started with `stdout=True`)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        output = process.stderr or process.stdout
        assert output is not None
        self._process = process
        self._stderr = output
        self.lines: list[str] = []
        self.port = 0

    async def wait_for(self, pattern: str | re.Pattern[str], count: int = 1) -> None:
        """Read stderr until `pattern` occurs `count` more times; fail at its end or after WAIT."""
        found = 0
        async with asyncio.timeout(WAIT):
            while found < count:
                line = (await self._stderr.readline()).decode(errors="replace")
                assert line, "\n".join([*self.lines, f"(ended waiting for {pattern!r})"])
                self.lines.append(line.removesuffix("\n"))
                found += len(re.findall(pattern, line))

    async def wait_listening(self) -> None:
        """Return once uvicorn listens; `port` is then the one it chose."""
        await self.wait_for(LISTENING)
        found = LISTENING.search(self.lines[-1])
        assert found is not None
        self.port = int(found[1])

    async def stop(self) -> int:
        """SIGTERM, as an orchestrator sends it; read stderr to its end. The exit status."""
        self.send(signal.SIGTERM)
        return await self.wait_exit()

    @property
    def running(self) -> bool:
        return self._process.returncode is None

    def send(self, signum: int) -> None:
        """Send `signum` (SIGTERM, SIGKILL, ...) to the child."""
        self._process.send_signal(signum)

    async def wait_exit(self) -> int:
        """Read stderr to its end; the exit status, within WAIT seconds."""
        async with asyncio.timeout(WAIT):
            rest = (await self._stderr.read()).decode(errors="replace")
            # On newlines only, as the process ends its lines: splitlines() would also cut
            # at the raw \r, \x1c or U+2028 a test must see still inside a line.
            self.lines += rest.removesuffix("\n").split("\n") if rest else []
            return await self._process.wait()


async def until(condition: Callable[[], Awaitable[bool]], within: float = WAIT) -> None:
    """Poll `condition` until it holds; fail after `within` seconds."""
    async with asyncio.timeout(within):
        # Each poll is a request to the service or to Redis: nothing to await instead.
        while True:
            if await condition():
                return
            await asyncio.sleep(0.05)  # between polls of the condition, not in place of one


@contextlib.asynccontextmanager
async def child(cwd: Path, *args: str, **variables: str) -> AsyncIterator[Child]:
    """`python *args` in `cwd` with `environment(**variables)`, killed if still running after."""
    async with _started(cwd, args, variables, stdout=False) as started:
        yield started


@contextlib.asynccontextmanager
async def child_with_stdout(cwd: Path, *args: str, **variables: str) -> AsyncIterator[Child]:
    """As `child`, and what it writes to stdout (uvicorn's access log) is read with stderr."""
    async with _started(cwd, args, variables, stdout=True) as started:
        yield started


@contextlib.asynccontextmanager
async def _started(
    cwd: Path, args: tuple[str, ...], variables: dict[str, str], *, stdout: bool
) -> AsyncIterator[Child]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=cwd,
        env=environment(**variables),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE if stdout else asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.STDOUT if stdout else asyncio.subprocess.PIPE,
    )
    try:
        yield Child(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def exchange(port: int, request: bytes) -> bytes:
    """Send one raw HTTP request to 127.0.0.1:`port` and read the answer to its end."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        async with asyncio.timeout(WAIT):
            return await reader.read()
    finally:
        writer.close()


async def workers_serving(service: Child, workers: int) -> None:
    """Return once `service`, started with WORKERS=`workers`, answers HTTP.

    uvicorn's parent logs its address before any worker listens, and each
    worker starts listening only after its startup: neither line says "serving".
    The probe asks for a path no route serves, so no route's count moves.
    """
    await service.wait_listening()
    await service.wait_for("Application startup complete", count=workers)

    async def answers() -> bool:
        try:
            reply = await exchange(service.port, b"GET /probe HTTP/1.0\r\nHost: localhost\r\n\r\n")
        except ConnectionRefusedError:
            return False
        return reply.startswith(b"HTTP/1.1 ")

    await until(answers)
