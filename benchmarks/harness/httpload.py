"""HTTP/1.1 keep-alive load loops over raw asyncio streams (lighter than any client library,
so on two cores the server, not the client, is what saturates)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class Load:
    completed: int = 0
    errors: int = 0
    measuring: bool = False
    measured: int = 0


async def _answer(reader: asyncio.StreamReader) -> bytes:
    """Read one response; its head (status line and headers)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return head


async def _connection(port: int, path: str, load: Load, stop: asyncio.Event) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while not stop.is_set():
            writer.write(request)
            head = await _answer(reader)
            if head.startswith(b"HTTP/1.1 200"):
                load.completed += 1
                if load.measuring:
                    load.measured += 1
            else:
                load.errors += 1
    finally:
        writer.close()


@dataclass
class Measured:
    seconds: float
    answered: int  # 200 answers inside the measured window
    errors: int  # non-200 answers and failed connections, over the whole load
    server_cpu: float  # server CPU seconds inside the measured window


async def run_load(
    port: int, path: str, connections: int, seconds: float, warmup: float, cpu: Callable[[], float]
) -> Measured:
    """Hammer `path` from `connections` keep-alive connections; after `warmup` seconds count
    the answers and the server's CPU (`cpu()`) for `seconds`."""
    load = Load()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_connection(port, path, load, stop)) for _ in range(connections)]
    try:
        await asyncio.sleep(warmup)  # a timed load phase, not synchronisation
        cpu_start = cpu()
        load.measuring = True
        start = time.monotonic()
        await asyncio.sleep(seconds)
        load.measuring = False
        elapsed = time.monotonic() - start
        cpu_end = cpu()
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    failures = [
        r for r in results if isinstance(r, Exception) and not isinstance(r, asyncio.CancelledError)
    ]
    if failures and load.completed == 0:
        raise failures[0]
    return Measured(elapsed, load.measured, load.errors + len(failures), cpu_end - cpu_start)


async def post_each(port: int, paths: Iterator[str], connections: int) -> int:
    """POST to each of `paths` (empty bodies), from `connections` keep-alive connections,
    each sending its next request once its last was answered; the answers other than 2xx.

    A connection takes the next path only when it is about to send it, so a path made by a
    generator can carry the time it was sent.
    """
    errors = 0

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for path in paths:
                writer.write(
                    f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                    "Content-Length: 0\r\n\r\n".encode()
                )
                if not (await _answer(reader)).startswith(b"HTTP/1.1 2"):
                    errors += 1
        finally:
            writer.close()

    await all_or_none([connection() for _ in range(connections)])
    return errors


async def all_or_none(loops: list[Coroutine[Any, Any, None]]) -> None:
    """Run `loops` concurrently to their ends; after an error in one, the others stop too."""
    tasks = [asyncio.create_task(loop) for loop in loops]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
