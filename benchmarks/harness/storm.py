"""The reconnect storm (issue 12): every client of a restarted process comes back with `since`.

Two processes of the Redis bake (one worker each, history on) share a Redis the run starts.
`clients` subscribers connect to the first and subscribe to one channel; the harness
publishes `rate` messages/s over HTTP through the second, from before the restart to the
end. The first process is restarted: SIGTERM (it closes every client with 1012), and once
it exited, started again on the same port. Each client reconnects as the demo page does
(`backoff`), then subscribes with `since` = the last offset and epoch it saw.

A client is *recovered* when every such subscribe answered `recovered: true` and it then
received every message up to the channel's last one, once each, in offset order (no gap, no
duplicate, no `resync`). It is *back live* at the first message after the reply's offset,
on a connection opened after the restart began: caught up, and receiving live traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from . import procs
from .client import PROBE, open_many
from .scenarios import Figures
from .tokens import Credential
from .variants import Redis, Server, Unavailable, Workspace, launch
from .wire import Multiplexed, Position, Subscription, abort_all, position_of

CHANNEL = "storm"
VARIANT = "ours-redis-history"  # the Redis bake, one worker, HISTORY_SIZE as configured
# The demo page's reconnect policy (static/demo.html): the n-th attempt waits between half
# and all of min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (n - 1)) seconds; a connection that
# lasted STABLE seconds starts the count afresh when it drops.
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
STABLE = 10.0
# How long a stopping process may take to close its clients and exit before SIGKILL
# (the service's own SHUTDOWN_TIMEOUT is 10 s).
SHUTDOWN_GRACE = 15.0


def backoff(attempt: int) -> float:
    """Seconds to wait before reconnect attempt `attempt` (1, 2, ...): exponential, capped,
    half fixed and half random, so clients dropped together do not return together."""
    ceiling = min(BACKOFF_MAX, BACKOFF_FIRST * 2.0 ** (attempt - 1))
    return ceiling / 2 + random.random() * ceiling / 2


@dataclass(frozen=True)
class Storm:
    """What one storm does: `clients` subscribers, `rate` messages/s; after the last client is
    back, `after` more seconds of publishing before delivery is checked; `timeout` bounds
    each phase."""

    clients: int
    rate: float = 10.0
    after: float = 1.0
    timeout: float = 120.0


@dataclass
class _Member:
    """One client's view of the channel across its connections."""

    credential: Credential
    position: Position  # the last place seen: the next subscribe's `since`
    live_after: int  # messages past this offset are live on the current connection
    connected_at: float
    live_at: float | None = None  # first live message on the current connection
    resumes: int = 0  # subscribes with `since`
    not_recovered: int = 0  # of them, answered `recovered: false`
    gaps: int = 0
    duplicates: int = 0
    resyncs: int = 0
    failed_attempts: int = 0  # reconnects refused, reset or answered with an error

    def resumed(self, subscription: Subscription, now: float) -> None:
        self.resumes += 1
        if not subscription.recovered:
            self.not_recovered += 1
            self.position = subscription.position  # the client reloads; messages follow from here
        self.live_after = subscription.position.offset
        self.connected_at = now
        self.live_at = None

    def received(self, position: Position, now: float) -> bool:
        """Check `position` follows the last one; True when it is the first live message of
        the current connection."""
        if position.epoch == self.position.epoch and position.offset <= self.position.offset:
            self.duplicates += 1
            return False
        if position.epoch != self.position.epoch or position.offset != self.position.offset + 1:
            self.gaps += 1
        self.position = position
        if self.live_at is None and position.offset > self.live_after:
            self.live_at = now
            return True
        return False


@dataclass
class _Crowd:
    """Every member, and the two things the run waits for: all live since `restarted_at`
    (or since they connected, before it), and all at the channel's `final` offset."""

    members: list[_Member]
    restarted_at: float | None = None
    live: set[int] = field(default_factory=set)
    all_live: asyncio.Event = field(default_factory=asyncio.Event)
    final: int | None = None
    at_final: set[int] = field(default_factory=set)
    all_at_final: asyncio.Event = field(default_factory=asyncio.Event)
    # Failed reconnect attempts by cause: "refused" (nothing listening: the process is
    # down), an HTTP status, or the exception's name; and the first failure's text.
    failures: Counter[str] = field(default_factory=Counter)
    first_failure: str | None = None

    def failed(self, index: int, error: Exception) -> None:
        self.members[index].failed_attempts += 1
        if isinstance(error, ConnectionRefusedError):
            cause = "refused"
        elif isinstance(error, InvalidStatus):
            cause = f"HTTP {error.response.status_code}"
        else:
            cause = type(error).__name__
        self.failures[cause] += 1
        if self.first_failure is None and cause != "refused":
            self.first_failure = f"{cause}: {error}"[:300]

    def restart(self, now: float) -> None:
        self.restarted_at = now
        self.live.clear()
        self.all_live.clear()

    def note(self, index: int, position: Position) -> None:
        member, now = self.members[index], time.monotonic()
        if member.received(position, now) and (
            self.restarted_at is None or member.connected_at >= self.restarted_at
        ):
            self.live.add(index)
            if len(self.live) == len(self.members):
                self.all_live.set()
        if self.final is not None and member.position.offset >= self.final:
            self.at_final.add(index)
            if len(self.at_final) == len(self.members):
                self.all_at_final.set()

    def finish_at(self, final: int) -> None:
        self.final = final
        self.at_final = {i for i, m in enumerate(self.members) if m.position.offset >= final}
        if len(self.at_final) == len(self.members):
            self.all_at_final.set()


async def _member(
    crowd: _Crowd, index: int, wire: Multiplexed, connection: ClientConnection
) -> None:
    """Read the channel; when the server drops the connection, reconnect after a backoff and
    subscribe `since` the last message seen, as the browser client would."""
    member = crowd.members[index]
    retries = 0
    while True:
        try:
            async for raw in connection:
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "message" and frame.get("channel") == CHANNEL:
                    crowd.note(index, position_of(frame))
                elif kind == "resync":
                    member.resyncs += 1
                    member.position = position_of(frame)
        except ConnectionClosed:
            pass
        finally:
            abort_all([connection])
        retries = 1 if time.monotonic() - member.connected_at >= STABLE else retries + 1
        while True:
            await asyncio.sleep(backoff(retries))  # the client's reconnect delay
            try:
                connection, subscription = await wire.resume(
                    CHANNEL, member.position, member.credential, open_timeout=10
                )
            except Exception as exc:  # refused or reset while the process restarts: back off again
                crowd.failed(index, exc)
                retries += 1
                continue
            member.resumed(subscription, time.monotonic())
            break


class _Publisher:
    """`rate` messages/s to the channel over HTTP, through the process that is not restarted."""

    def __init__(self, server: Server, rate: float) -> None:
        self.url = f"http://127.0.0.1:{server.port}/channels/{CHANNEL}"
        self.headers = server.wire.http_headers()
        self.rate = rate
        self.sent = 0
        self.failed = 0

    async def run(self, http: httpx.AsyncClient, stop: asyncio.Event) -> None:
        start = time.monotonic()
        while not stop.is_set():
            delay = start + self.sent / self.rate - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)  # pacing
                continue
            self.sent += 1
            body = {"bench": [PROBE, self.sent, time.monotonic_ns()], "pad": ""}
            try:
                answer = await http.post(
                    f"{self.url}/messages", json=body, headers=self.headers, timeout=5.0
                )
                if answer.status_code != 202:
                    self.failed += 1
            except httpx.HTTPError:
                self.failed += 1

    async def position(self, http: httpx.AsyncClient) -> int:
        """The channel's latest offset, from the history endpoint."""
        answer = await http.get(
            f"{self.url}/history", params={"limit": 1}, headers=self.headers, timeout=5.0
        )
        answer.raise_for_status()
        offset: int = answer.json()["offset"]
        return offset


async def _wait(event: asyncio.Event, timeout: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)
    return event.is_set()


async def storm_run(space: Workspace, spec: Storm) -> Figures:
    """Connect `spec.clients` to one process, restart it under them while another publishes,
    and measure how they come back (see the module's docstring)."""
    redis = Redis(procs.free_port())
    await redis.start(space.logs)
    servers: dict[str, Server] = {}
    tasks: list[asyncio.Task[None]] = []
    connections: list[ClientConnection] = []
    stop_publishing = asyncio.Event()
    publishing: asyncio.Task[None] | None = None
    try:
        servers["restarted"] = await launch(VARIANT, space, redis=redis)
        startup_cpu = servers["restarted"].process.cpu_seconds()
        servers["publishing"] = await launch(VARIANT, space, redis=redis)
        wire = servers["restarted"].wire
        if not isinstance(wire, Multiplexed):
            raise Unavailable("the storm needs the service's protocol")
        credentials = [space.issuer.issue() for _ in range(spec.clients)]
        subscriptions: dict[int, Subscription] = {}

        async def subscribe(index: int) -> ClientConnection:
            connection, subscriptions[index] = await wire.resume(CHANNEL, None, credentials[index])
            return connection

        connections = await open_many(subscribe, spec.clients)
        now = time.monotonic()
        crowd = _Crowd(
            [
                _Member(
                    credentials[i], subscriptions[i].position, subscriptions[i].position.offset, now
                )
                for i in range(spec.clients)
            ]
        )
        tasks = [
            asyncio.create_task(_member(crowd, index, wire, connection))
            for index, connection in enumerate(connections)
        ]
        publisher = _Publisher(servers["publishing"], spec.rate)
        async with httpx.AsyncClient() as http:
            publishing = asyncio.create_task(publisher.run(http, stop_publishing))
            if not await _wait(crowd.all_live, spec.timeout):
                raise TimeoutError(
                    f"{len(crowd.live)} of {spec.clients} clients received a message "
                    f"within {spec.timeout:g}s of subscribing"
                )

            restarted_at = time.monotonic()
            crowd.restart(restarted_at)
            port = servers["restarted"].port
            # In a thread: the clients must see their close and start their backoff meanwhile.
            await asyncio.to_thread(servers.pop("restarted").process.stop, SHUTDOWN_GRACE)
            exited = time.monotonic()
            servers["restarted"] = await launch(VARIANT, space, redis=redis, port=port)
            serving = time.monotonic()
            back = await _wait(crowd.all_live, spec.timeout)
            cpu = servers["restarted"].process.cpu_seconds()
            rss = servers["restarted"].process.rss_bytes()

            await asyncio.sleep(spec.after if back else 0)  # more messages after the storm
            stop_publishing.set()
            await publishing
            crowd.finish_at(await publisher.position(http))
            await _wait(crowd.all_at_final, 10.0)
    finally:
        stop_publishing.set()
        if publishing is not None:
            publishing.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if publishing is not None:
            await asyncio.gather(publishing, return_exceptions=True)
        abort_all(connections)
        for server in servers.values():
            server.stop()
        redis.stop()

    members = crowd.members
    final = crowd.final
    recovered = [
        m.resumes > 0
        and m.not_recovered == 0
        and m.gaps == m.duplicates == m.resyncs == 0
        and m.position.offset == final
        for m in members
    ]
    live = sorted(
        m.live_at - restarted_at
        for m in members
        if m.live_at is not None and m.live_at >= restarted_at
    )
    return {
        "clients": len(members),
        "recovered_clients": sum(recovered),
        "recovered_share": sum(recovered) / len(members),
        "back_live": len(crowd.live),
        # From the SIGTERM: the last client back live, half of them back, the new process serving.
        "last_live_s": live[-1] if back and live else None,
        "median_live_s": statistics.median(live) if live else None,
        "shutdown_s": exited - restarted_at,
        "serving_s": serving - restarted_at,
        # CPU of the new process from its start to the last client back live, its startup
        # included; startup alone, as the first process used it before any client came.
        "cpu_s": cpu,
        "startup_cpu_s": startup_cpu,
        "cpu_ms_per_client": (cpu - startup_cpu) * 1e3 / len(members),
        "rss_after_mib": rss / (1024 * 1024),
        "resumes": sum(m.resumes for m in members),
        "not_recovered": sum(m.not_recovered for m in members),
        "gaps": sum(m.gaps for m in members),
        "duplicates": sum(m.duplicates for m in members),
        "resyncs": sum(m.resyncs for m in members),
        "failed_attempts": sum(m.failed_attempts for m in members),
        "refused_attempts": crowd.failures["refused"],
        "failures": dict(crowd.failures),
        "first_failure": crowd.first_failure,
        "published": publisher.sent,
        "failed_publishes": publisher.failed,
        "final_offset": final,
    }
