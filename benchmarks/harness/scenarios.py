"""One run of each kind of measurement, returning its figures as a flat dict.

Each run starts its own server process (fresh memory, fresh CPU counters), connects, warms up
until every subscription is live, measures, and stops everything it started in `finally`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from . import procs
from .client import PROBE, Audience, Publisher, open_many, parse, per_channel, percentile
from .httpload import run_load
from .variants import SERVICE_VARIANTS, Redis, Server, Unavailable, Workspace, launch
from .wire import Wire, abort_all

CHANNEL = "bench"
MIB = 1024 * 1024
KIB = 1024
# /proc/<pid>/stat counts CPU in clock ticks (10 ms at the usual 100 Hz): below this much CPU
# the figure is mostly rounding, so it is reported as not measured.
MIN_CPU = 5 / procs.CLOCK_TICKS
Figures = dict[str, Any]


@dataclass(frozen=True)
class Broadcast:
    """What one broadcast run does: N subscribers, `messages` of `size` bytes, at `rate`/s
    (None: back to back), `slow_fraction` of the subscribers stop reading; published across
    `channels` in turn, each subscriber on `per_client` of them (see `spread_channels`)."""

    clients: int
    messages: int
    size: int
    rate: float | None = None
    slow_fraction: float = 0.0
    idle: float = 3.0  # give up waiting once nothing arrived for this long
    cap: float = 120.0  # bound on publishing, and again on waiting for delivery
    channels: int = 1
    per_client: int = 1


def channel_names(count: int) -> list[str]:
    return [CHANNEL] if count == 1 else [f"{CHANNEL}:{index}" for index in range(count)]


def spread_channels(clients: int, channels: int, per_client: int) -> list[tuple[int, ...]]:
    """The channels of each client: client i takes i, i + s, i + 2s, ... modulo `channels`.

    The stride s is coprime with `channels`, so a client's channels are distinct, and about
    channels / per_client, so they are spread out; when `channels` divides `clients`, every
    channel has exactly clients x per_client / channels subscribers, and clients i and j
    share a set only when i = j modulo `channels`.
    """
    if not 1 <= per_client <= channels:
        raise ValueError(f"{per_client} channels per client out of {channels}")
    stride = channels // per_client + 1 if per_client > 1 else 1
    while math.gcd(stride, channels) != 1:
        stride += 1
    return [
        tuple((client + step * stride) % channels for step in range(per_client))
        for client in range(clients)
    ]


def _slow_indexes(clients: int, fraction: float) -> frozenset[int]:
    count = round(clients * fraction)
    if fraction > 0 and count == 0:
        count = 1
    return frozenset(index * clients // count for index in range(count)) if count else frozenset()


async def _watch_closes(
    port: int, client_ports: dict[int, int], closed: dict[int, float], start: float
) -> None:
    """Record when the server side of each watched connection leaves ESTABLISHED (closed by
    the server: our side never closes or reads them). `client_ports`: local port -> index."""
    while len(closed) < len(client_ports):
        table = procs.tcp_connections(port)
        now = time.monotonic()
        for local_port, index in client_ports.items():
            if index in closed:
                continue
            entry = table.get(local_port)
            if entry is None or entry[0] != procs.ESTABLISHED:
                closed[index] = now - start
        await asyncio.sleep(0.1)  # sampling /proc/net/tcp: the kernel offers nothing to wait on


async def broadcast_run(space: Workspace, variant: str, spec: Broadcast) -> Figures:
    """Start `variant`, connect, publish over one WebSocket, measure delivery to every client."""
    if spec.channels > 1 and variant not in SERVICE_VARIANTS:
        raise Unavailable("one channel per socket: it runs the single-channel scenarios only")
    names = channel_names(spec.channels)
    subscriptions = spread_channels(spec.clients, spec.channels, spec.per_client)
    each = per_channel(spec.messages, spec.channels)
    planned = [sum(each[channel] for channel in chans) for chans in subscriptions]
    server = await launch(variant, space)
    wire = server.wire
    clients: list[ClientConnection] = []
    audience: Audience | None = None
    publisher: Publisher | None = None
    watcher: asyncio.Task[None] | None = None
    try:
        rss_start = server.process.rss_bytes()
        clients = await open_many(
            lambda i: wire.subscriber([names[c] for c in subscriptions[i]]), spec.clients
        )
        publisher = Publisher(await wire.publisher(names), wire, names, spec.size)
        slow = _slow_indexes(spec.clients, spec.slow_fraction)
        audience = Audience(clients, planned, subscriptions, slow)
        audience.start()
        await publisher.warm_up(audience, timeout=30)
        workers = server.worker_pids()
        spread = procs.connections_per_process(workers, server.port) if server.workers > 1 else {}

        rss_connected = server.process.rss_bytes()
        cpu_start = server.process.cpu_seconds()
        client_cpu_start = time.process_time()
        closed: dict[int, float] = {}
        ports: dict[int, int] = {}
        stuck = 0
        start = time.monotonic()
        start_ns = time.monotonic_ns()
        if slow:
            ports = {clients[i].transport.get_extra_info("sockname")[1]: i for i in slow}
            watcher = asyncio.create_task(_watch_closes(server.port, ports, closed, start))
        sent = await publisher.publish(spec.messages, spec.rate, spec.cap)
        delivered = await audience.wait_delivered(spec.idle, spec.cap)
        end_ns = audience.last_received_ns or time.monotonic_ns()
        cpu = server.process.cpu_seconds() - cpu_start
        client_cpu = time.process_time() - client_cpu_start
        rss_end = server.process.rss_bytes()
        if watcher is not None:
            await asyncio.sleep(0.15)  # one more /proc sample after the last delivery
            watcher.cancel()
            table = procs.tcp_connections(server.port)
            stuck = sum(table[port][2] for port in ports if port in table)
    finally:
        if watcher is not None:
            watcher.cancel()
        await _tear_down(audience, clients, publisher, server)

    latencies = sorted(audience.latencies_ns)
    received = audience.received
    elapsed = max(end_ns - start_ns, 1) / 1e9
    healthy_closed = sum(1 for index in audience.closed_at if index not in slow)
    figures: Figures = {
        "frames_per_s": received / elapsed if received else 0.0,
        "reach": received / audience.expected if audience.expected else None,
        "p50_ms": _ms(percentile(latencies, 0.50)),
        "p99_ms": _ms(percentile(latencies, 0.99)),
        "cpu_us_per_frame": cpu * 1e6 / received if received and cpu >= MIN_CPU else None,
        "rss_before_mib": rss_start / MIB,
        "rss_after_mib": rss_end / MIB,
        "published": sent,
        "publisher_closed": publisher.closed,
        # Error frames the publisher got back (the baked service answers every publish).
        "publisher_errors": publisher.errors,
        "publisher_first_error": publisher.first_error,
        "received": received,
        "expected": audience.expected,
        "all_delivered": delivered,
        "healthy_closed_by_server": healthy_closed,
        "seconds": elapsed,
        # Near 1.0 the client process, not the server, set the pace (it shares the 2 cores).
        "client_cpu_share": client_cpu / elapsed,
        "server_cpu_share": cpu / elapsed,
    }
    if spread:
        figures["connections_per_worker"] = sorted(spread.values(), reverse=True)
    if slow:
        figures["slow_clients"] = len(slow)
        figures["memory_growth_mib"] = (rss_end - rss_connected) / MIB
        figures["slow_closed"] = len(closed)
        figures["slow_close_s"] = max(closed.values()) if len(closed) == len(slow) else None
        # Bytes the kernel still holds for the slow clients (not in the server's RSS).
        figures["slow_send_queue_mib"] = stuck / MIB
    return figures


async def _tear_down(
    audience: Audience | None,
    clients: list[ClientConnection],
    publisher: Publisher | None,
    server: Server,
) -> None:
    """Close what a run opened, whichever step it stopped at: clients, publisher, server."""
    if audience is not None:
        await audience.stop()
    else:
        abort_all(clients)
    if publisher is not None:
        await publisher.close()
    server.stop()


def _ms(ns: float | None) -> float | None:
    return None if ns is None else ns / 1e6


async def slow_pair(space: Workspace, variant: str, spec: Broadcast) -> Figures:
    """The slow-consumer run and, for reference, the same run with every client reading."""
    reference = await broadcast_run(
        space, variant, Broadcast(**{**spec.__dict__, "slow_fraction": 0.0})
    )
    slow = await broadcast_run(space, variant, spec)
    p99, p99_ref = slow["p99_ms"], reference["p99_ms"]
    return {
        "healthy_reach": slow["reach"],
        "healthy_p99_ms": p99,
        "no_slow_reach": reference["reach"],
        "no_slow_p99_ms": p99_ref,
        "p99_vs_no_slow": p99 / p99_ref if p99 is not None and p99_ref else None,
        "memory_growth_mib": slow["memory_growth_mib"],
        "rss_after_mib": slow["rss_after_mib"],
        "slow_clients": slow["slow_clients"],
        "slow_closed": slow["slow_closed"],
        "slow_close_s": slow["slow_close_s"],
        "frames_per_s": slow["frames_per_s"],
        "slow_send_queue_mib": slow["slow_send_queue_mib"],
        "healthy_closed_by_server": slow["healthy_closed_by_server"],
        "publisher_closed": slow["publisher_closed"],
        "publisher_errors": slow["publisher_errors"],
        "client_cpu_share": slow["client_cpu_share"],
        "no_slow_client_cpu_share": reference["client_cpu_share"],
        "server_cpu_share": slow["server_cpu_share"],
    }


@dataclass(frozen=True)
class Capacity:
    """What one capacity run does: `clients` idle connections, each subscribed to one channel,
    at most `concurrency` of them opening at once."""

    clients: int
    concurrency: int = 50
    timeout: float = 120.0  # bound on opening them all


# Descriptors a process needs besides its connections: listening socket, logs, epoll, pipes.
FD_HEADROOM = 200


def _enough_descriptors(needed: int, pid: int | None, who: str) -> None:
    limit = procs.open_files_limit(pid)
    if limit < needed:
        raise Unavailable(
            f"{who} may open {limit} files (RLIMIT_NOFILE), {needed} needed: raise the hard "
            "limit (ulimit -Hn, limits.conf, systemd's LimitNOFILE) or lower --capacity-clients"
        )


async def capacity_run(space: Workspace, variant: str, spec: Capacity) -> Figures:
    """Open `spec.clients` connections, each connected (authenticated, for the baked service)
    and subscribed to one channel: how fast they opened, the server's memory per connection,
    and whether every one of them is live (a message published afterwards reaches each)."""
    _enough_descriptors(spec.clients + FD_HEADROOM, None, "this process")
    server = await launch(variant, space)
    wire = server.wire
    clients: list[ClientConnection] = []
    audience: Audience | None = None
    publisher: Publisher | None = None
    try:
        # Servers inherit the harness's raised limit (run.py); check, rather than assume.
        _enough_descriptors(spec.clients + FD_HEADROOM, server.process.pid, variant)
        credentials = wire.credentials(spec.clients)  # minted before the clock starts
        rss_start = server.process.rss_bytes()
        cpu_start = server.process.cpu_seconds()
        client_cpu_start = time.process_time()
        start = time.monotonic()
        clients = await open_many(
            lambda i: wire.subscriber([CHANNEL], credentials[i]),
            spec.clients,
            spec.concurrency,
            spec.timeout,
        )
        elapsed = time.monotonic() - start
        cpu = server.process.cpu_seconds() - cpu_start
        client_cpu = time.process_time() - client_cpu_start
        rss_end = server.process.rss_bytes()
        audience = Audience(clients, [0] * len(clients))
        audience.start()
        publisher = Publisher(await wire.publisher([CHANNEL]), wire, [CHANNEL], 100)
        with contextlib.suppress(TimeoutError):  # reported as the share of live connections
            await publisher.warm_up(audience, timeout=30)
    finally:
        await _tear_down(audience, clients, publisher, server)
    opened = len(clients)
    return {
        "connections": opened,
        "connects_per_s": opened / elapsed,
        "cpu_us_per_connection": cpu * 1e6 / opened if cpu >= MIN_CPU else None,
        "kib_per_connection": (rss_end - rss_start) / KIB / opened,
        "rss_before_mib": rss_start / MIB,
        "rss_after_mib": rss_end / MIB,
        "live": sum(audience.warm) / opened,
        "seconds": elapsed,
        "client_cpu_share": client_cpu / elapsed,
        "server_cpu_share": cpu / elapsed,
    }


async def http_run(
    space: Workspace, variant: str, connections: int, seconds: float, warmup: float
) -> Figures:
    """Requests/s of GET /health with `connections` keep-alive connections."""
    server = await launch(variant, space)
    try:
        measured = await run_load(
            server.port, "/health", connections, seconds, warmup, server.process.cpu_seconds
        )
    finally:
        server.stop()
    return {
        "requests_per_s": measured.answered / measured.seconds,
        "cpu_us_per_request": (
            measured.server_cpu * 1e6 / measured.answered
            if measured.answered and measured.server_cpu >= MIN_CPU
            else None
        ),
        "errors": measured.errors,
    }


class _Probes:
    """Which probe reached which client, for the Redis recovery measurement."""

    def __init__(self, clients: int) -> None:
        self.clients = clients
        self.reached: dict[int, set[int]] = {}
        self.completed_at: dict[int, float] = {}
        self.complete = asyncio.Event()
        self.reconnects = 0

    def note(self, index: int, probe: int) -> None:
        seen = self.reached.setdefault(probe, set())
        seen.add(index)
        if len(seen) == self.clients and probe not in self.completed_at:
            self.completed_at[probe] = time.monotonic()
            self.complete.set()


async def _probe_listener(wire: Wire, index: int, probes: _Probes, stop: asyncio.Event) -> None:
    """A subscriber that reconnects whenever the server drops it, as a real client would."""
    while not stop.is_set():
        try:
            connection = await wire.subscriber([CHANNEL], open_timeout=5)
        except Exception:  # refused or reset while the service recovers: retry
            await asyncio.sleep(0.1)  # reconnect backoff
            continue
        try:
            async for raw in connection:
                parsed = parse(raw)
                if parsed is not None and parsed[0] == PROBE:
                    probes.note(index, parsed[1])
        except ConnectionClosed:
            pass
        finally:
            abort_all([connection])
        probes.reconnects += 1
        await asyncio.sleep(0.1)  # reconnect backoff


async def redis_recovery(space: Workspace, clients: int, down: float, timeout: float) -> Figures:
    """Kill Redis under the 2-worker service, restart it on the same port, and time how long
    after it answers PING again a published message reaches every client."""
    redis = Redis(procs.free_port())
    await redis.start(space.logs)
    server = await launch("ours-redis", space, redis=redis)
    probes = _Probes(clients)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(_probe_listener(server.wire, index, probes, stop))
        for index in range(clients)
    ]
    sequence = 0
    publish_url = f"http://127.0.0.1:{server.port}/channels/{CHANNEL}/messages"
    headers = server.wire.http_headers()  # a bearer token that may publish
    failed_publishes = 0

    async def publish(http: httpx.AsyncClient) -> None:
        nonlocal sequence, failed_publishes
        sequence += 1
        body = {"bench": [PROBE, sequence, time.monotonic_ns()], "pad": ""}
        try:
            answer = await http.post(publish_url, json=body, headers=headers, timeout=1.0)
            if answer.status_code != 202:
                failed_publishes += 1
        except httpx.HTTPError:
            failed_publishes += 1

    try:
        async with httpx.AsyncClient() as http:
            async with asyncio.timeout(30):  # everyone connected and subscribed
                while not probes.complete.is_set():
                    await publish(http)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(probes.complete.wait(), 0.2)
            redis.kill()
            killed = time.monotonic()
            failed_publishes = 0
            while time.monotonic() - killed < down:  # the outage: keep publishing into it
                await publish(http)
                await asyncio.sleep(0.1)
            probes.complete.clear()
            await redis.start(space.logs)
            ready = time.monotonic()
            deadline = ready + timeout
            recovered: float | None = None
            while time.monotonic() < deadline:
                await publish(http)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(probes.complete.wait(), 0.1)
                done = [at for at in probes.completed_at.values() if at >= ready]
                if done:
                    recovered = min(done) - ready
                    break
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        server.stop()
        redis.stop()
    return {
        "recovery_s": recovered,
        "outage_s": down,
        "client_reconnects": probes.reconnects,
        "failed_publishes_during_outage": failed_publishes,
    }


def suite_run(template: Path, timeout: float) -> Figures:
    """Wall time of the template's own suite (its own addopts: `-n auto`), and where it goes.

    Stages are the suite's test functions, their durations summed over every
    parametrization and worker (from pytest's JUnit XML): time spent, not wall.
    """
    start = time.monotonic()
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    with tempfile.TemporaryDirectory() as scratch:
        junit = Path(scratch) / "suite.xml"
        try:
            done = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", f"--junitxml={junit}"],
                cwd=template,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {
                "wall_s": time.monotonic() - start,
                "exit_code": None,
                "summary": f"timed out after {timeout}s",
            }
        wall = time.monotonic() - start
        stages = _stages(junit) if junit.exists() else {}
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return {
        "wall_s": wall,
        "exit_code": done.returncode,
        "summary": lines[-1] if lines else "",
        "stages": stages,
    }


def _stages(junit: Path) -> dict[str, dict[str, float]]:
    """Seconds and test count per test function, longest first."""
    stages: dict[str, dict[str, float]] = {}
    for case in ElementTree.parse(junit).iter("testcase"):
        name = case.get("name", "?").partition("[")[0]
        stage = stages.setdefault(name, {"seconds": 0.0, "tests": 0})
        stage["seconds"] += float(case.get("time", 0))
        stage["tests"] += 1
    return dict(sorted(stages.items(), key=lambda item: -item[1]["seconds"]))
