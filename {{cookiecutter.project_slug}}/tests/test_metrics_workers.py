"""GET /metrics of a service with two worker processes: figures of the whole service.

Real `python -m` children with WORKERS=2; each WebSocket client learns which
worker it reached from its welcome frame's `origin` (one per process).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect

import {{ cookiecutter.package_name }} as package

from .live import connected, published, subscribed
from .processes import Child, child, until, workers_serving
from .scrape import scraped, value

pytestmark = pytest.mark.anyio

# Clients opened before giving up on reaching both workers (the kernel spreads
# connections over the workers' accept calls; a few dozen reach both).
MAX_CLIENTS = 60


@contextlib.asynccontextmanager
async def two_workers(cwd: Path, **variables: str) -> AsyncIterator[Child]:
    """`python -m <package>` with two workers on a free port, stopped with SIGTERM after the
    block (a SIGKILL would stop the parent alone and leave its workers running)."""
    arguments = {"WORKERS": "2", "HOST": "127.0.0.1", "PORT": "0", **variables}
    async with child(cwd, "-m", package.__name__, **arguments) as service:
        try:
            yield service
        finally:
            if service.running:
                await service.stop()


async def figure(service: Child, name: str, **labels: str) -> float:
    return value(await scraped(f"http://127.0.0.1:{service.port}/metrics"), name, **labels)


async def on_both_workers(
    service: Child, stack: contextlib.AsyncExitStack, least: int
) -> dict[str, list[ClientConnection]]:
    """At least `least` connected clients, some on each worker: by worker (its origin)."""
    workers: dict[str, list[ClientConnection]] = {}
    opened = 0
    while len(workers) < 2 or opened < least:
        assert opened < MAX_CLIENTS, "every connection reached the same worker"
        ws = await stack.enter_async_context(connect(f"ws://127.0.0.1:{service.port}/ws"))
        welcome = await connected(ws)
        workers.setdefault(welcome["origin"], []).append(ws)
        opened += 1
    return workers


async def test_two_workers_report_every_connection_and_sum_their_counters(tmp_path: Path) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    async with two_workers(tmp_path, TMPDIR=str(temporary)) as service:
        await workers_serving(service, 2)
        # The directory the service made for its workers, and only one.
        [directory] = list(temporary.glob(f"{package.__name__}-metrics-*"))
        async with contextlib.AsyncExitStack() as stack:
            workers = await on_both_workers(service, stack, least=6)
            clients = [ws for group in workers.values() for ws in group]
            for number, ws in enumerate(clients):
                await subscribed(ws, f"workers-{number}")
                await published(ws, f"workers-{number}", number)

            async def connections_are(count: int) -> bool:
                return await figure(service, "websocket_connections") == count

            await until(lambda: connections_are(len(clients)))
            published_total = await figure(service, "messages_published_total", via="websocket")
            assert published_total == len(clients)
            assert await figure(service, "frames_delivered_total") == len(clients)
            assert await figure(service, "backend_ready") == 1
            # One client leaves on each worker.
            for group in workers.values():
                await group.pop().close()
            await until(lambda: connections_are(len(clients) - 2))
        await until(lambda: connections_are(0))
        assert await service.stop() == 0
    assert not directory.exists(), "the service removes the directory it made"


async def test_a_killed_worker_stops_counting_and_a_chosen_directory_is_kept(
    tmp_path: Path,
) -> None:
    chosen = tmp_path / "metrics"
    chosen.mkdir()
    async with two_workers(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(chosen)) as service:
        await workers_serving(service, 2)
        async with contextlib.AsyncExitStack() as stack:
            workers = await on_both_workers(service, stack, least=4)
            total = sum(len(group) for group in workers.values())

            async def connections_are(count: int) -> bool:
                return await figure(service, "websocket_connections") == count

            await until(lambda: connections_are(total))
            pids = {int(path.stem.rpartition("_")[2]) for path in chosen.glob("gauge_live*.db")}
            assert len(pids) == 2
            victim = pids.pop()
            os.kill(victim, signal.SIGKILL)
            # Its clients lose their connection: the survivors are the other worker's.
            lost = await first_lost([group[0] for group in workers.values()])
            [survivors] = [group for group in workers.values() if group[0] is not lost]
            await until(lambda: connections_are(len(survivors)))
            assert list(chosen.glob(f"gauge_live*_{victim}.db")) == []
        assert await service.stop() == 0
    assert chosen.is_dir(), "a directory the user chose is theirs"
{%- if cookiecutter.use_lifespan %}
    # Workers that stop cleanly take their gauges with them (their hubs stop in the lifespan).
    assert list(chosen.glob("gauge_live*.db")) == []
{%- endif %}


async def first_lost(clients: list[ClientConnection]) -> ClientConnection:
    """The first of `clients` whose connection ends (within 30 seconds)."""
    waiting = {asyncio.ensure_future(ws.wait_closed()): ws for ws in clients}
    try:
        done, _ = await asyncio.wait(waiting, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waiting:
            task.cancel()
    assert done, "no client lost its connection"
    return waiting[done.pop()]
