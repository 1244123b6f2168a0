"""The load client: N WebSocket subscribers and one publisher, all in this one asyncio process.

Every variant speaks the same protocol, so this client is identical for all of them: join with
`WS /ws/{channel}`, publish by sending a text JSON frame on a socket, count `"type": "message"`
frames. Published data carries `{"bench": [kind, seq, sent_ns], "pad": "x..."}`, `sent_ns` from
`time.monotonic_ns()` in this process, so each receiver computes its delivery latency directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

WARMUP, MEASURED, PROBE = 0, 1, 2

# Only message frames carry our "bench" array, and the padding is all "x", so the first "type"
# key in a frame is the envelope's: a regex finds both without decoding 16 KiB JSON per frame.
_TYPE = re.compile(rb'"type"\s*:\s*"([A-Za-z_]+)"')
_BENCH = re.compile(rb'"bench"\s*:\s*\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]')


def parse(raw: bytes | str) -> tuple[int, int, int] | None:
    """(kind, seq, sent_ns) of a message frame carrying bench data, else None."""
    if isinstance(raw, str):
        raw = raw.encode()
    kind = _TYPE.search(raw)
    if kind is None:
        return _parse_slow(raw)
    if kind.group(1) != b"message":
        return None
    bench = _BENCH.search(raw)
    if bench is None:
        return None
    return int(bench.group(1)), int(bench.group(2)), int(bench.group(3))


def _parse_slow(raw: bytes) -> tuple[int, int, int] | None:
    try:
        frame = json.loads(raw)
        kind, seq, sent = frame["data"]["bench"]
    except (ValueError, KeyError, TypeError):
        return None
    if frame.get("type") != "message":
        return None
    return int(kind), int(seq), int(sent)


def payload(kind: int, seq: int, size: int) -> str:
    """Published JSON text of about `size` bytes, stamped with the send time."""
    head = f'{{"bench":[{kind},{seq},{time.monotonic_ns()}],"pad":"'
    return head + "x" * max(0, size - len(head) - 2) + '"}'


async def open_client(url: str, open_timeout: float = 30.0) -> ClientConnection:
    """One subscriber connection: no compression, no client pings, an unbounded receive queue
    (the server is what must bound things; the client must never be what throttles)."""
    return await connect(
        url,
        compression=None,
        ping_interval=None,
        max_queue=None,
        max_size=None,
        open_timeout=open_timeout,
        close_timeout=1,
    )


async def open_clients(
    url: str, count: int, concurrency: int = 50, timeout: float = 60.0
) -> list[ClientConnection]:
    """`count` connections, at most `concurrency` handshakes at once (a bounded SYN backlog)."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> ClientConnection:
        async with gate:
            return await open_client(url)

    tasks = [asyncio.ensure_future(one()) for _ in range(count)]
    try:
        async with asyncio.timeout(timeout):
            return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        abort_all([r for r in results if isinstance(r, ClientConnection)])
        raise


def abort_all(connections: Sequence[ClientConnection]) -> None:
    """Drop connections at once (the figures are taken; a close handshake would only cost time)."""
    for connection in connections:
        transport = connection.transport
        if transport is not None:
            transport.abort()


@dataclass
class Audience:
    """The subscribers of one run and what they received."""

    clients: list[ClientConnection]
    planned: int  # measured messages each healthy client should receive
    slow: frozenset[int] = frozenset()  # indexes that pause reading after their first warm-up frame
    counts: list[int] = field(init=False)
    latencies_ns: array[int] = field(init=False, default_factory=lambda: array("q"))
    closed_at: dict[int, int] = field(init=False, default_factory=dict)
    warm: list[bool] = field(init=False)
    received: int = field(init=False, default=0)
    last_received_ns: int = field(init=False, default=0)
    all_warm: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    all_delivered: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _warm_count: int = field(init=False, default=0)
    _tasks: list[asyncio.Task[None]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.clients)
        self.warm = [False] * len(self.clients)
        self.healthy = len(self.clients) - len(self.slow)
        self.expected = self.healthy * self.planned
        if self.expected == 0:
            self.all_delivered.set()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._receive(index, client))
            for index, client in enumerate(self.clients)
        ]

    async def stop(self) -> None:
        abort_all(self.clients)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _receive(self, index: int, client: ClientConnection) -> None:
        slow = index in self.slow
        recv = client.recv
        try:
            while True:
                raw = await recv(decode=False)
                parsed = parse(raw)
                if parsed is None:
                    continue
                kind, _seq, sent_ns = parsed
                now = time.monotonic_ns()
                if kind == MEASURED:
                    self.counts[index] += 1
                    if slow:
                        continue
                    self.latencies_ns.append(now - sent_ns)
                    self.received += 1
                    self.last_received_ns = now
                    if self.received >= self.expected:
                        self.all_delivered.set()
                elif kind == WARMUP and not self.warm[index]:
                    self.warm[index] = True
                    self._warm_count += 1
                    if self._warm_count == len(self.clients):
                        self.all_warm.set()
                    if slow:
                        # A consumer that stops reading: bytes pile up in the kernel, then on the
                        # server. The subscription is known to be live (a frame arrived).
                        if client.transport is not None:
                            client.transport.pause_reading()
                        return
        except ConnectionClosed:
            self.closed_at[index] = time.monotonic_ns()

    async def wait_delivered(self, idle: float, cap: float) -> bool:
        """Wait until every healthy client has every measured message, or until nothing arrived
        for `idle` seconds, or `cap` seconds in all. True when all were delivered."""
        deadline = time.monotonic() + cap
        while not self.all_delivered.is_set():
            before = self.received
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.all_delivered.wait(), min(idle, remaining))
            if self.received == before:
                break
        return self.all_delivered.is_set()


class Publisher:
    """One WebSocket publisher on the channel; it also drains what the server sends it, since a
    publisher that never reads is itself a slow consumer."""

    def __init__(self, connection: ClientConnection, size: int) -> None:
        self.connection = connection
        self.size = size
        self.sent = 0
        self.closed: str | None = None
        self._drain = asyncio.create_task(self._discard())

    async def _discard(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for _ in self.connection:
                pass

    async def send(self, kind: int, seq: int) -> None:
        await self.connection.send(payload(kind, seq, self.size))
        self.sent += 1

    async def warm_up(self, audience: Audience, timeout: float) -> None:
        """Publish warm-up frames until every client got one: every subscription is live."""
        seq = 0
        try:
            async with asyncio.timeout(timeout):
                while not audience.all_warm.is_set():
                    await self.send(WARMUP, seq)
                    seq += 1
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(audience.all_warm.wait(), 0.25)
        except TimeoutError:
            warm, total = sum(audience.warm), len(audience.clients)
            raise TimeoutError(
                f"warm-up: {warm} of {total} clients received a frame within {timeout:g}s "
                f"({len(audience.closed_at)} closed by the server)"
            ) from None

    async def publish(self, count: int, rate: float | None, cap: float) -> int:
        """Send `count` measured messages, back to back or at `rate` per second; stop after `cap`
        seconds whatever happens. Returns how many were sent."""
        sent = 0
        start = time.monotonic()
        try:
            async with asyncio.timeout(cap):
                for seq in range(count):
                    if rate:
                        delay = start + seq / rate - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)  # pacing, not synchronisation
                    await self.send(MEASURED, seq)
                    sent += 1
        except TimeoutError:
            pass  # the cap: a server that stops reading its publisher shows as unsent messages
        except ConnectionClosed as exc:
            self.closed = f"{exc}"  # the server dropped the publisher: report, keep measuring
        return sent

    async def close(self) -> None:
        abort_all([self.connection])
        self._drain.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await self._drain


def percentile(sorted_values: Sequence[int], fraction: float) -> float | None:
    """Nearest-rank percentile of already sorted values, or None when there are none."""
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values)) - 1))
    return float(sorted_values[rank])
