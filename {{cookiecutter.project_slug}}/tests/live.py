"""A real uvicorn server inside the test's event loop, on a free loopback port.

Tests talk to it over real sockets (the `websockets` client, httpx2) and
observe the app through its public objects (`app.state.hub.stats()`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from {{ cookiecutter.package_name }}.broadcast.backend import Backend, BroadcastUnavailable
from {{ cookiecutter.package_name }}.broadcast.envelope import Draft, Position
from {{ cookiecutter.package_name }}.broadcast.history import History
from {{ cookiecutter.package_name }}.broadcast.hub import Hub
from {{ cookiecutter.package_name }}.broadcast.memory import MemoryBackend
from {{ cookiecutter.package_name }}.settings import Settings

# Every wait in these tests is on a condition, bounded by this many seconds.
WAIT = 10.0
# How often a quick stop looks whether the connections have closed.
STOP_POLL = 0.005


class _Server(uvicorn.Server):
    """uvicorn's server, quick to start and stop: a suite stops dozens of them.

    uvicorn polls `should_exit` every 0.1 s, and its shutdown pauses 0.1 s
    after asking connections to close, then polls every 0.1 s until they
    have. Here "listening" and "should exit" are events, and shutdown takes
    uvicorn's steps in its order without the fixed pause, polling every few
    milliseconds. With `uvicorn_shutdown` (or a `timeout_graceful_shutdown`),
    uvicorn's own shutdown runs, for tests about shutdown itself.
    """

    def __init__(self, config: uvicorn.Config, *, uvicorn_shutdown: bool = False) -> None:
        self._exit = asyncio.Event()
        super().__init__(config)
        self.listening = asyncio.Event()
        self.uvicorn_shutdown = uvicorn_shutdown

    @property  # uvicorn's plain attribute, made observable
    def should_exit(self) -> bool:
        return self._exit.is_set()

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        if value:
            self._exit.set()
        else:
            self._exit.clear()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()

    async def main_loop(self) -> None:
        await self._exit.wait()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # A graceful-shutdown bound is uvicorn's to keep.
        if self.uvicorn_shutdown or self.config.timeout_graceful_shutdown is not None:
            await super().shutdown(sockets)
            return
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        # uvicorn's connection and task sets signal nothing when they empty,
        # so this polls them, as uvicorn does; `serve`'s WAIT bounds it.
        while self.server_state.connections or self.server_state.tasks:  # noqa: ASYNC110
            await asyncio.sleep(STOP_POLL)
        for server in self.servers:
            await server.wait_closed()
        if not self.force_exit:
            await self.lifespan.shutdown()


@dataclass
class Live:
    app: FastAPI
    server: uvicorn.Server
    port: int

    @property
    def hub(self) -> Hub:
        hub: Hub = self.app.state.hub
        return hub

    def ws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def http(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@asynccontextmanager
async def serve(
    app: FastAPI, *, port: int = 0, uvicorn_shutdown: bool = False, **options: Any
) -> AsyncIterator[Live]:
    """Run `app` under uvicorn on `port` (0: a free one) until the block ends;
    `options` go to `uvicorn.Config`.

    `uvicorn_shutdown=True` stops it with uvicorn's own shutdown (see `_Server`).
    """
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, **options)
    server = _Server(config, uvicorn_shutdown=uvicorn_shutdown)
    serving = asyncio.create_task(server.serve())
    listening = asyncio.create_task(server.listening.wait())
    async with asyncio.timeout(WAIT):
        await asyncio.wait({serving, listening}, return_when=asyncio.FIRST_COMPLETED)
    if not server.listening.is_set():
        listening.cancel()
        await serving
        raise RuntimeError("uvicorn did not start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Live(app, server, port)
    finally:
        server.should_exit = True
        async with asyncio.timeout(WAIT):
            await serving


class Outage(MemoryBackend):
    """The in-memory backend with a switch: while `down`, it fails the way a lost Redis does."""

    down = False

    def _check(self) -> None:
        if self.down:
            raise BroadcastUnavailable("backend is down")

    async def subscribe(self, channel: str) -> None:
        self._check()
        await super().subscribe(channel)

    async def publish(self, channel: str, message: Draft) -> Position:
        self._check()
        return await super().publish(channel, message)

    async def history(self, channel: str, since: int | None, limit: int | None = None) -> History:
        self._check()
        return await super().history(channel, since, limit)

    def ready(self) -> str | None:
        return "backend is down" if self.down else super().ready()


def use_backend(app: FastAPI, backend: Backend) -> Hub:
    """Give `app` a hub on `backend` (before it serves), readiness check included."""
    settings: Settings = app.state.settings
    hub = Hub(
        backend,
        queue_size=settings.ws_queue_size,
        send_timeout=settings.ws_send_timeout,
        max_connections=settings.ws_max_connections,
    )
    app.state.hub = hub
    app.state.readiness.remove("broadcast")
    app.state.readiness.add("broadcast", hub.ready)
    return hub


async def receive(ws: ClientConnection) -> dict[str, Any]:
    """The next frame, as JSON, within WAIT seconds."""
    async with asyncio.timeout(WAIT):
        frame = await ws.recv()
    message: dict[str, Any] = json.loads(frame)
    return message


async def closed_with(ws: ClientConnection) -> tuple[int | None, str | None]:
    """Read until the server closes the connection; its close code and reason."""
    async with asyncio.timeout(WAIT):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            return ws.close_code, ws.close_reason


async def connected(ws: ClientConnection, token: str | None = None) -> dict[str, Any]:
    """Send `connect` (with `token`, if any) and return the welcome frame."""
    await ws.send(json.dumps({"type": "connect", "token": token}))
    welcome = await receive(ws)
    assert welcome["type"] == "welcome", welcome
    return welcome


_ids = itertools.count(1)


async def command(ws: ClientConnection, kind: str, **fields: Any) -> dict[str, Any]:
    """Send a `kind` command with a fresh id; return its answer (a reply or an error).

    Message envelopes that arrive before the answer (a publisher's own echo)
    are skipped; anything else before it fails the test.
    """
    command_id = next(_ids)
    await ws.send(json.dumps({"type": kind, "id": command_id, **fields}))
    while True:
        frame = await receive(ws)
        if frame["type"] != "message":
            break
    assert frame["type"] in ("reply", "error"), frame
    assert frame.get("id") == command_id, frame
    return frame


async def subscribed(ws: ClientConnection, *channels: str) -> list[dict[str, Any]]:
    """Subscribe to each of `channels`, failing the test on any refusal; the replies.

    Each reply names the channel's position (offset and epoch) when it went live.
    """
    replies = []
    for channel in channels:
        answer = await command(ws, "subscribe", channel=channel)
        expected = {"type": "reply", "id": answer["id"], "channel": channel}
        assert answer == expected | {"offset": answer.get("offset"), "epoch": answer.get("epoch")}
        assert isinstance(answer["offset"], int), answer
        assert answer["offset"] >= 0, answer
        assert isinstance(answer["epoch"], str), answer
        assert answer["epoch"], answer
        replies.append(answer)
    return replies


async def published(ws: ClientConnection, channel: str, data: Any) -> dict[str, Any]:
    """Publish `data` from `ws`, which is subscribed to `channel`: its own copy of the message.

    The publish must be answered with a reply naming the message's offset and
    epoch; the copy comes back through the backend, before or after the reply.
    """
    await ws.send(json.dumps({"type": "publish", "id": "echo", "channel": channel, "data": data}))
    frames = [await receive(ws), await receive(ws)]
    [reply] = [frame for frame in frames if frame["type"] == "reply"]
    [message] = [frame for frame in frames if frame["type"] == "message"]
    position = {"offset": message["offset"], "epoch": message["epoch"]}
    assert reply == {"type": "reply", "id": "echo", "channel": channel, **position}
    assert message["channel"] == channel
    return message


async def joined(ws: ClientConnection, *channels: str, token: str | None = None) -> dict[str, Any]:
    """Connect (authentication off unless `token`) and subscribe to `channels`; the welcome."""
    welcome = await connected(ws, token)
    await subscribed(ws, *channels)
    return welcome


async def stalled_client(live: Live, channel: str) -> ClientConnection:
    """A client that has connected, subscribed to `channel`, then stopped reading its socket.

    A small receive buffer and no compression let the server's buffers fill
    after a few hundred kilobytes rather than megabytes.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", live.port))
    ws = await connect(live.ws("/ws"), sock=sock, compression=None)
    await joined(ws, channel)
    ws.transport.pause_reading()
    return ws


async def across_a_quiet_spell(live: Live, channel: str, quiet: float) -> list[dict[str, Any]]:
    """Subscribe to `channel`, publish "before", publish nothing for `quiet` seconds
    (past a short HISTORY_TTL, say), then "after" and "later": every frame the
    subscriber got after "before", up to "later"."""
    async with connect(live.ws("/ws")) as subscriber, connect(live.ws("/ws")) as publisher:
        await joined(subscriber, channel)
        await connected(publisher)
        await command(publisher, "publish", channel=channel, data="before")
        assert (await receive(subscriber))["data"] == "before"
        # Not synchronisation: the passing of time is what is tested (the history expires).
        await asyncio.sleep(quiet)
        await command(publisher, "publish", channel=channel, data="after")
        await command(publisher, "publish", channel=channel, data="later")
        frames: list[dict[str, Any]] = []
        async with asyncio.timeout(WAIT):
            while not frames or frames[-1].get("data") != "later":
                frames.append(await receive(subscriber))
    return frames
