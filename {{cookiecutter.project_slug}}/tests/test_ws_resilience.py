"""The hub under stress, over real sockets: slow readers, vanishing clients, shutdown, outages."""

from __future__ import annotations

import asyncio
import json
import logging
import select
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import ClientConnection, connect

from {{ cookiecutter.package_name }}.broadcast.envelope import json_text
from {{ cookiecutter.package_name }}.broadcast.history import MemoryHistory
from {{ cookiecutter.package_name }}.broadcast.hub import HubStats
from {{ cookiecutter.package_name }}.broadcast.memory import MemoryBackend
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings

from .live import (
    WAIT,
    Live,
    Outage,
    closed_with,
    command,
    connected,
    joined,
    published,
    receive,
    serve,
    stalled_client,
    subscribed,
    use_backend,
)

pytestmark = pytest.mark.anyio

IDLE = HubStats(clients=0, channels={}, backlog=0, pushing_back=0)


def hub_tasks() -> list[asyncio.Task[object]]:
    """The tasks the WebSocket endpoint and the hub start, by the names they give them."""
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("websocket ")]


async def test_a_client_that_stops_reading_is_closed_with_1013_and_the_rest_get_everything() -> (
    None
):
    settings = Settings(_env_file=None, ws_queue_size=16)
    async with serve(create_app(settings)) as live:
        stalled = await stalled_client(live, "firehose")
        readers = [await connect(live.ws("/ws"), compression=None) for _ in range(3)]
        for ws in readers:
            await joined(ws, "firehose")

        async def read_until_end(ws: ClientConnection) -> list[int]:
            numbers: list[int] = []
            while "end" not in (data := (await receive(ws))["data"]):
                numbers.append(data["n"])
            return numbers

        reading = [asyncio.create_task(read_until_end(ws)) for ws in readers]
        pad = "x" * 4000
        most_queued = 0
        published = 0
        # Publish until the hub drops the stalled client; each message yields
        # once so the readers keep up as a real client would.
        while live.hub.stats().clients == 4:
            assert published < 20_000, "the stalled client was never closed"
            published += 1
            await live.hub.publish("firehose", json_text({"n": published, "pad": pad}), "test")
            await asyncio.sleep(0)
            most_queued = max(most_queued, live.hub.stats().backlog)
        await live.hub.publish("firehose", json_text({"end": True}), "test")
        async with asyncio.timeout(WAIT):
            received = await asyncio.gather(*reading)

        # Nobody else lost or reordered a message, and memory stayed bounded:
        # at most a queue's worth waited for the stalled client.
        assert received == [list(range(1, published + 1))] * 3
        assert most_queued <= 16
        assert live.hub.stats().backlog == 0
        # Once it reads again it finds what its socket held, then the close.
        stalled.transport.resume_reading()
        code, reason = await closed_with(stalled)
        assert code == 1013
        assert reason == "too slow: 16 messages behind"
        for ws in readers:
            await ws.close()


# uvicorn runs on uvloop when it is installed (as it is by uvicorn[standard]),
# and uvloop's transports are not asyncio's: check both.
@pytest.mark.parametrize(
    "anyio_backend",
    [
        pytest.param("asyncio", id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    ],
)
async def test_a_client_that_never_reads_again_has_its_connection_dropped() -> None:
    # The close frame cannot reach a peer whose socket is full; after the
    # send timeout the server must drop the TCP connection, not keep it open
    # (with its kernel buffers) until the peer reads again, possibly never.
    settings = Settings(_env_file=None, ws_queue_size=4, ws_send_timeout=0.2)
    async with serve(create_app(settings)) as live:
        stalled = await stalled_client(live, "firehose")
        pad = "x" * 4000
        for n in range(5_000):
            if live.hub.stats().clients == 0:
                break
            await live.hub.publish("firehose", json_text({"n": n, "pad": pad}), "test")
            await asyncio.sleep(0)
        assert live.hub.stats().clients == 0, "the stalled client was never dropped by the hub"
        try:
            # Wait, still without reading, for the reset to reach the client's socket.
            assert await connection_reset(stalled)
        finally:
            stalled.transport.abort()


async def connection_reset(ws: ClientConnection) -> bool:
    """Whether the peer resets `ws`'s socket within WAIT seconds, without reading from it."""
    sock = ws.transport.get_extra_info("socket")
    poller = select.poll()
    poller.register(sock.fileno(), 0)  # only POLLERR and POLLHUP, which are always reported
    events = await asyncio.to_thread(poller.poll, WAIT * 1000)
    return any(event & (select.POLLERR | select.POLLHUP) for _, event in events)


async def test_clients_that_vanish_mid_fan_out_are_unregistered_and_leave_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(Settings(_env_file=None))
    caplog.clear()  # the app's own warning that authentication is off is not this test's
    backend = MemoryBackend()
    hub = use_backend(app, backend)
    with caplog.at_level(logging.INFO):
        async with serve(app) as live:
            clients = [await connect(live.ws("/ws")) for _ in range(100)]
            # Each on two channels, so that every channel has clients that
            # leave it while still on another.
            for i, ws in enumerate(clients):
                await joined(ws, f"storm-{i % 4}", f"storm-{(i + 1) % 4}")
            assert hub.stats().clients == 100
            assert hub.stats().channels == {f"storm-{i}": 50 for i in range(4)}
            assert backend.channels == {f"storm-{i}" for i in range(4)}
            # Drop each connection without a closing handshake, publishing
            # all along, so that sends meet sockets in every state of dying.
            for i, ws in enumerate(clients):
                ws.transport.abort()
                await hub.publish(f"storm-{i % 4}", json_text({"i": i}), "test")
            async with asyncio.timeout(WAIT):
                await hub.wait_empty()
                await asyncio.gather(*hub_tasks())
            assert hub.stats() == IDLE
            assert backend.channels == frozenset()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "Traceback" not in caplog.text


async def test_shutdown_closes_every_connection_with_1012_and_ends_every_task() -> None:
    app = create_app(Settings(_env_file=None))
    async with serve(app, uvicorn_shutdown=True) as live:
        clients = [await connect(live.ws("/ws")) for _ in range(10)]
        for i, ws in enumerate(clients[:6]):
            await joined(ws, f"closing-{i % 2}", "closing-all")
        for ws in clients[6:8]:
            await connected(ws)  # connected, subscribed to nothing
        # clients[8:] opened the socket and have not sent `connect` yet.
        assert live.hub.stats().clients == 10
        live.server.should_exit = True
        closes = await asyncio.gather(*(closed_with(ws) for ws in clients))
    assert [code for code, _ in closes] == [1012] * 10
    assert live.hub.stats() == IDLE
    assert hub_tasks() == []


async def test_a_client_that_stopped_reading_does_not_hold_shutdown() -> None:
    # As `python -m` runs it: uvicorn waits at most the graceful-shutdown
    # timeout (a fraction of a second here, whole seconds in production).
    settings = Settings(_env_file=None, ws_queue_size=100_000, ws_send_timeout=60)
    async with serve(create_app(settings), timeout_graceful_shutdown=0.25) as live:
        stalled = await stalled_client(live, "stuck")
        reading = await connect(live.ws("/ws"))
        await joined(reading, "stuck")
        while live.hub.stats().pushing_back == 0:
            await live.hub.publish("stuck", json_text({"pad": "x" * 8000}), "test")
            await asyncio.sleep(0)
        live.server.should_exit = True
        code, _ = await closed_with(reading)
    # Leaving `serve` waited for the server to finish, within its bound.
    assert code == 1012
    assert live.hub.stats() == IDLE
    assert hub_tasks() == []
    stalled.transport.abort()


async def test_stopping_the_hub_closes_all_with_1012_ends_its_tasks_and_refuses_new_ones() -> None:
    # What the lifespan does at shutdown, for servers that do not close WebSockets themselves.
    settings = Settings(_env_file=None, ws_queue_size=100_000)
    async with serve(create_app(settings)) as live:
        stalled = await stalled_client(live, "stopping")
        async with (
            connect(live.ws("/ws")) as reading,
            connect(live.ws("/ws")) as idle,
            connect(live.ws("/ws")) as silent,
        ):
            await joined(reading, "stopping")
            await connected(idle)  # subscribed to nothing
            # `silent` has not sent `connect`.
            while live.hub.stats().pushing_back == 0:
                await live.hub.publish("stopping", json_text({"pad": "x" * 8000}), "test")
                await asyncio.sleep(0)
            async with asyncio.timeout(WAIT):
                await live.hub.stop(deadline=WAIT)
            assert live.hub.stats() == IDLE
            assert hub_tasks() == []
            for ws in (reading, idle, silent):
                assert await closed_with(ws) == (1012, "server shutting down")
        async with connect(live.ws("/ws")) as late:
            assert await closed_with(late) == (1012, "server shutting down")
        stalled.transport.abort()


@pytest.fixture
async def outage() -> AsyncIterator[tuple[Outage, Live]]:
    """A served app on an Outage backend."""
    app = create_app(Settings(_env_file=None))
    backend = Outage()
    use_backend(app, backend)
    async with serve(app) as live:
        yield backend, live


async def test_a_subscribe_while_the_backend_is_down_is_refused_unavailable_the_connection_stays(
    outage: tuple[Outage, Live],
) -> None:
    backend, live = outage
    async with connect(live.ws("/ws")) as steady, connect(live.ws("/ws")) as other:
        await joined(steady, "steady")
        await joined(other, "other")
        backend.down = True
        refused = await command(steady, "subscribe", channel="new")
        assert refused == {
            "type": "error",
            "id": refused["id"],
            "code": "unavailable",
            "reason": "broadcast unavailable: try again later",
        }
        # Nothing kept of the refused subscription; the connection still answers.
        assert "new" not in backend.channels
        assert live.hub.stats().channels == {"steady": 1, "other": 1}
        assert (await command(steady, "ping"))["type"] == "reply"
        backend.down = False
        # Its subscription from before the outage, and the other client's, still deliver.
        assert (await published(steady, "steady", "still live"))["data"] == "still live"
        assert (await published(other, "other", "here too"))["data"] == "here too"
        # And subscribing again, now that the backend is back, works.
        await subscribed(steady, "new")
        assert "new" in backend.channels
        assert (await published(steady, "new", "at last"))["data"] == "at last"


async def test_publishing_while_the_backend_is_down_answers_unavailable_with_the_commands_id(
    outage: tuple[Outage, Live],
) -> None:
    backend, live = outage
    async with connect(live.ws("/ws")) as ws:
        await joined(ws, "room")
        backend.down = True
        await ws.send(
            json.dumps({"type": "publish", "id": "lost", "channel": "room", "data": {"lost": True}})
        )
        assert await receive(ws) == {
            "type": "error",
            "id": "lost",
            "code": "unavailable",
            "reason": "broadcast unavailable: try again later",
        }
        backend.down = False
        assert (await published(ws, "room", {"lost": False}))["data"] == {"lost": False}


async def test_when_the_backend_lost_history_each_channels_subscribers_get_one_resync() -> None:
    app = create_app(Settings(_env_file=None))
    backend = MemoryBackend()
    use_backend(app, backend)
    async with (
        serve(app) as live,
        connect(live.ws("/ws")) as a,
        connect(live.ws("/ws")) as b,
    ):
        await joined(a, "a", "both")
        await joined(b, "b")
        # What a backend calls around a reconnect (Receiver), the history lost
        # meanwhile (as when the memory backend's process restarts): new epochs.
        live.hub.interrupted()
        backend.history_store = MemoryHistory(100, 300.0, 1 << 20)
        live.hub.resumed()
        for ws, channels in ((a, ["a", "both"]), (b, ["b"])):
            frames = [await receive(ws) for _ in channels]
            assert sorted(frame["channel"] for frame in frames) == channels
            for frame in frames:
                assert frame["type"] == "resync"
                assert frame["origin"] == live.hub.origin
                assert frame["offset"] == 0
                assert "missed" in frame["reason"]
        # Nothing more than one resync per channel came: the next frames are messages.
        after = await published(a, "both", "after")
        assert (after["data"], after["offset"]) == ("after", 1)
        assert (await published(b, "b", "after too"))["data"] == "after too"
