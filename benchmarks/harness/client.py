"""The load client: subscribers and publishers of every variant, all in this one asyncio process.

The variants' protocols differ only in how a client joins channels and publishes (wire.py
has an adapter for each); everything here is the same for all of them. Published data
carries `{"bench": [kind, seq, sent_ns], "pad": "x..."}`, `sent_ns` from `time.monotonic_ns()`
in this process, so each receiver computes its delivery latency directly. Warm-up messages
carry the channel's index as their `seq`, so a subscriber knows when each of its channels
has delivered one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from array import array
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from .wire import Wire, abort_all

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


async def open_many(
    opener: Callable[[int], Awaitable[ClientConnection]],
    count: int,
    concurrency: int = 50,
    timeout: float = 60.0,
) -> list[ClientConnection]:
    """`opener(0)` ... `opener(count - 1)`, `concurrency` at a time (a bounded SYN backlog)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> ClientConnection:
        async with gate:
            return await opener(index)

    tasks = [asyncio.ensure_future(one(index)) for index in range(count)]
    try:
        async with asyncio.timeout(timeout):
            return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        abort_all([r for r in results if isinstance(r, ClientConnection)])
        raise


@dataclass
class Audience:
    """The subscribers of one run and what they received."""

    clients: list[ClientConnection]
    planned: Sequence[int]  # measured messages each client should receive (slow ones aside)
    # The channel indexes each client is subscribed to; empty: every client on channel 0.
    subscriptions: Sequence[Sequence[int]] = ()
    slow: frozenset[int] = frozenset()  # indexes that pause reading once warm
    counts: list[int] = field(init=False)
    latencies_ns: array[int] = field(init=False, default_factory=lambda: array("q"))
    closed_at: dict[int, int] = field(init=False, default_factory=dict)
    warm: list[bool] = field(init=False)
    received: int = field(init=False, default=0)
    last_received_ns: int = field(init=False, default=0)
    all_warm: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    all_delivered: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _warm_count: int = field(init=False, default=0)
    # Per client: a bit per channel that delivered a warm-up message, and the bits wanted.
    _warmed: list[int] = field(init=False)
    _wanted: list[int] = field(init=False)
    _tasks: list[asyncio.Task[None]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        count = len(self.clients)
        if len(self.planned) != count:
            raise ValueError(f"{len(self.planned)} planned counts for {count} clients")
        self.counts = [0] * count
        self.warm = [False] * count
        self._warmed = [0] * count
        subscriptions = self.subscriptions or [(0,)] * count
        self._wanted = [sum(1 << channel for channel in set(chans)) for chans in subscriptions]
        self.healthy = count - len(self.slow)
        self.expected = sum(n for i, n in enumerate(self.planned) if i not in self.slow)
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
                kind, seq, sent_ns = parsed
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
                    self._warmed[index] |= 1 << seq
                    if (self._warmed[index] & self._wanted[index]) != self._wanted[index]:
                        continue
                    self.warm[index] = True
                    self._warm_count += 1
                    if self._warm_count == len(self.clients):
                        self.all_warm.set()
                    if slow:
                        # A consumer that stops reading: bytes pile up in the kernel, then on the
                        # server. Its subscriptions are known to be live (frames arrived).
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
    """One WebSocket publisher to `channels` (message k goes to channel k modulo their number).

    It also reads what the server sends it, since a publisher that never reads is itself a
    slow consumer: its own messages (a baseline's publisher is a member of its channel), or a
    reply per publish (the baked service), where it counts the errors.
    """

    def __init__(
        self, connection: ClientConnection, wire: Wire, channels: Sequence[str], size: int
    ) -> None:
        if not channels:
            raise ValueError("a publisher needs a channel")
        self.connection = connection
        self.wire = wire
        self.channels = list(channels)
        self.size = size
        self.sent = 0
        self.replies = 0
        self.errors = 0
        self.first_error: str | None = None
        self.closed: str | None = None
        self._drain = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                raw = await self.connection.recv(decode=False)
                kind = _TYPE.search(raw)
                if kind is None or kind.group(1) == b"message":
                    continue
                if kind.group(1) == b"reply":
                    self.replies += 1
                elif kind.group(1) == b"error":
                    self.errors += 1
                    if self.first_error is None:
                        self.first_error = raw[:300].decode(errors="replace")

    async def send(self, kind: int, seq: int, channel: int = 0) -> None:
        data = payload(kind, seq, self.size)
        await self.connection.send(
            self.wire.publish_frame(self.channels[channel], data, self.sent + 1)
        )
        self.sent += 1

    async def warm_up(self, audience: Audience, timeout: float) -> None:
        """Publish a warm-up message to every channel, again every 0.25 s, until every client
        got one from each of its channels: every subscription is live."""
        try:
            async with asyncio.timeout(timeout):
                while not audience.all_warm.is_set():
                    for channel in range(len(self.channels)):
                        await self.send(WARMUP, channel, channel)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(audience.all_warm.wait(), 0.25)
        except TimeoutError:
            warm, total = sum(audience.warm), len(audience.clients)
            raise TimeoutError(
                f"warm-up: {warm} of {total} clients received a frame on each of their channels "
                f"within {timeout:g}s ({len(audience.closed_at)} closed by the server; "
                f"publisher: {self.errors} error(s), first {self.first_error})"
            ) from None

    async def publish(self, count: int, rate: float | None, cap: float) -> int:
        """Send `count` measured messages, back to back or at `rate` per second, across the
        channels in turn; stop after `cap` seconds whatever happens. Returns how many were sent."""
        sent = 0
        channels = len(self.channels)
        start = time.monotonic()
        try:
            async with asyncio.timeout(cap):
                for seq in range(count):
                    if rate:
                        delay = start + seq / rate - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)  # pacing, not synchronisation
                    await self.send(MEASURED, seq, seq % channels)
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


def per_channel(count: int, channels: int) -> list[int]:
    """How many of `count` messages published in turn across `channels` each channel gets."""
    return [
        count // channels + (1 if channel < count % channels else 0) for channel in range(channels)
    ]


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of already sorted values, or None when there are none."""
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values)) - 1))
    return float(sorted_values[rank])
