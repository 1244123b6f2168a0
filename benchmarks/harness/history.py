"""The history scenario: what keeping each channel's history costs the service (issue 12).

Two variants of the Redis bake, one worker each, on the same Redis: `ours-redis-nohistory`
(HISTORY_SIZE=0: every message still gets its offset, nothing is kept) and
`ours-redis-history` (HISTORY_SIZE=100 by default: the publish script also appends the
message to the channel's stream). One run of a variant measures, each on a fresh process:

- publishing: `publishers` connections each send a `publish` command as soon as the reply to
  their previous one is back (a closed loop: the server, Redis and the round trip set the
  pace), counted for `seconds` after `warmup`; one subscriber of the channel checks that
  every acknowledged message arrives, once, in offset order;
- the paced fan-out (`scenarios.broadcast_run`), whose CPU per frame should not move: a
  process fans out the envelope Redis hands it, history or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from .client import MEASURED, payload
from .scenarios import CHANNEL, MIN_CPU, Broadcast, Figures, broadcast_run
from .variants import Unavailable, Workspace, launch
from .wire import Multiplexed, Position, Refused, abort_all, position_of


@dataclass(frozen=True)
class Publishing:
    """What one publishing run does: `publishers` closed loops of `size`-byte publishes,
    counted for `seconds` after `warmup` seconds."""

    publishers: int
    seconds: float
    size: int = 100
    warmup: float = 0.5
    idle: float = 3.0  # give up waiting for delivery once nothing arrived for this long


@dataclass
class _Tally:
    """Replies the publishers got (all of them, and those inside the measured window)."""

    measuring: bool = False
    acked: int = 0
    measured: int = 0
    errors: int = 0
    first_error: str | None = None


@dataclass
class _Order:
    """What the subscriber received: how many, and whether offsets ran 1 by 1."""

    last: Position
    received: int = 0
    gaps: int = 0
    duplicates: int = 0
    wanted: int = 0  # received count to reach, once the publishers stopped
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def note(self, position: Position) -> None:
        if position.epoch == self.last.epoch and position.offset <= self.last.offset:
            self.duplicates += 1
            return
        if position.epoch != self.last.epoch or position.offset != self.last.offset + 1:
            self.gaps += 1
        self.last = position
        self.received += 1
        if self.wanted and self.received >= self.wanted:
            self.done.set()


async def _publish_loop(
    connection: ClientConnection, wire: Multiplexed, tally: _Tally, size: int, stop: asyncio.Event
) -> None:
    """Publish, wait for the answer, publish again, until `stop`."""
    command_id = 0
    while not stop.is_set():
        command_id += 1
        data = payload(MEASURED, command_id, size)
        await connection.send(wire.publish_frame(CHANNEL, data, command_id))
        frame = json.loads(await connection.recv())
        if frame.get("type") == "reply":
            position_of(frame)  # a service that numbers its messages
            tally.acked += 1
            if tally.measuring:
                tally.measured += 1
        else:
            tally.errors += 1
            if tally.first_error is None:
                tally.first_error = json.dumps(frame)[:300]


async def _subscribe_loop(connection: ClientConnection, order: _Order) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for raw in connection:
            frame = json.loads(raw)
            if frame.get("type") == "message" and frame.get("channel") == CHANNEL:
                order.note(position_of(frame))


async def publish_run(space: Workspace, variant: str, spec: Publishing) -> Figures:
    """Start `variant` and measure how many publishes per second it answers, and its CPU
    (and Redis's) per publish, while one subscriber checks delivery."""
    server = await launch(variant, space)
    wire = server.wire
    connections: list[ClientConnection] = []
    tasks: list[asyncio.Task[None]] = []
    stop = asyncio.Event()
    try:
        if not isinstance(wire, Multiplexed) or space.redis is None:
            raise Unavailable("publishing is measured on the service with Redis")
        redis = space.redis.process
        assert redis is not None
        subscriber, subscription = await wire.resume(CHANNEL, None, space.issuer.issue())
        connections.append(subscriber)
        order = _Order(subscription.position)
        tasks.append(asyncio.create_task(_subscribe_loop(subscriber, order)))
        for _ in range(spec.publishers):
            connections.append(await wire.publisher([CHANNEL]))
        tally = _Tally()
        loops = [
            asyncio.create_task(_publish_loop(connection, wire, tally, spec.size, stop))
            for connection in connections[1:]
        ]
        tasks.extend(loops)

        await asyncio.sleep(spec.warmup)  # a timed phase: the loops run meanwhile
        _raise_failed(loops)
        cpu_start, redis_start = server.process.cpu_seconds(), redis.cpu_seconds()
        client_start = time.process_time()
        start = time.monotonic()
        tally.measuring = True
        await asyncio.sleep(spec.seconds)  # the measured phase
        tally.measuring = False
        elapsed = time.monotonic() - start
        cpu = server.process.cpu_seconds() - cpu_start
        redis_cpu = redis.cpu_seconds() - redis_start
        client_cpu = time.process_time() - client_start

        stop.set()  # each loop ends after the answer to the publish it has in flight
        async with asyncio.timeout(30):
            await asyncio.gather(*loops)
        order.wanted = tally.acked
        if order.received < order.wanted:
            with contextlib.suppress(TimeoutError):
                await _wait_delivered(order, spec.idle)
        # This run's publishes are the channel's last ones: with history on, the last
        # HISTORY_SIZE of them (or all) are kept.
        wanted = min(space.history_size, tally.acked)
        kept = await _kept(server.port, wire, order.last.offset - wanted)
    finally:
        stop.set()
        abort_all(connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        server.stop()
    measured = tally.measured
    return {
        "publishes_per_s": measured / elapsed,
        "cpu_us_per_publish": cpu * 1e6 / measured if measured and cpu >= MIN_CPU else None,
        "redis_cpu_us_per_publish": (
            redis_cpu * 1e6 / measured if measured and redis_cpu >= MIN_CPU else None
        ),
        "publishes_measured": measured,
        "publishes_acked": tally.acked,
        "publish_errors": tally.errors,
        "publish_first_error": tally.first_error,
        # Acknowledged publishes the subscriber received, and offsets out of order.
        "publish_reach": order.received / tally.acked if tally.acked else None,
        "publish_gaps": order.gaps,
        "publish_duplicates": order.duplicates,
        "history_kept": kept,
        "publish_seconds": elapsed,
        "publish_client_cpu_share": client_cpu / elapsed,
        "publish_server_cpu_share": cpu / elapsed,
    }


async def _kept(port: int, wire: Multiplexed, since: int) -> int:
    """How many messages after offset `since` the channel keeps now (GET /channels/{c}/history):
    none with history off, so a run shows which setting the service really had."""
    async with httpx.AsyncClient() as http:
        answer = await http.get(
            f"http://127.0.0.1:{port}/channels/{CHANNEL}/history",
            params={"since": max(0, since)},
            headers=wire.http_headers(),
            timeout=5.0,
        )
    answer.raise_for_status()
    return len(answer.json()["messages"])


def _raise_failed(loops: list[asyncio.Task[None]]) -> None:
    """Raise the error of a publishing loop that stopped (refused, closed) before its time."""
    for loop in loops:
        if loop.done():
            error = loop.exception()
            raise error if error is not None else Refused("a publisher stopped early")


async def _wait_delivered(order: _Order, idle: float) -> None:
    """Wait until the subscriber has every acknowledged message, or nothing came for `idle` s."""
    while not order.done.is_set():
        before = order.received
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(order.done.wait(), idle)
        if order.received == before:
            return


async def history_run(
    space: Workspace, variant: str, publishing: Publishing, paced: Broadcast
) -> dict[str, Any]:
    """Publishing, then the paced fan-out, of one history variant: the figures of both."""
    published = await publish_run(space, variant, publishing)
    fanned_out = await broadcast_run(space, variant, paced)
    return {**fanned_out, **published}
