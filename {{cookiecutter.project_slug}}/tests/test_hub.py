"""The hub's fan-out on its own: who gets which frames, in which order, in what grouping.

Clients here are recording `send` functions, so a test sees every frame the
hub hands to the server and the order it hands them over in.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import tracemalloc
from collections.abc import AsyncIterator

import pytest
from starlette.types import Message

from {{ cookiecutter.package_name }}.broadcast.backend import BroadcastUnavailable
from {{ cookiecutter.package_name }}.broadcast.client import Client, Send
from {{ cookiecutter.package_name }}.broadcast.envelope import draft, json_text
from {{ cookiecutter.package_name }}.broadcast.history import History, MemoryHistory
from {{ cookiecutter.package_name }}.broadcast.hub import Hub, HubFull, HubStopped
from {{ cookiecutter.package_name }}.broadcast.memory import MemoryBackend

from .live import WAIT

pytestmark = pytest.mark.anyio


class Wire:
    """Every frame the hub sends, as (client name, frame), in the order it sent them."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, dict[str, object]]] = []
        self._changed = asyncio.Event()

    def send_for(self, name: str) -> Send:
        async def send(message: Message) -> None:
            self.frames.append((name, json.loads(message["text"])))
            self._changed.set()

        return send

    def of(self, name: str) -> list[object]:
        """What `name` received: message data, or a frame's type."""
        frames = [frame for who, frame in self.frames if who == name]
        return [f["data"] if f["type"] == "message" else f["type"] for f in frames]

    def channels_of(self, name: str) -> list[object]:
        """The channel each message `name` received was published on."""
        return [f["channel"] for who, f in self.frames if who == name and f["type"] == "message"]

    async def until(self, count: int) -> None:
        """Wait until `count` frames have been sent in all."""
        async with asyncio.timeout(WAIT):
            while len(self.frames) < count:
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
def backend() -> MemoryBackend:
    return MemoryBackend()


@pytest.fixture
async def hub(backend: MemoryBackend) -> AsyncIterator[Hub]:
    hub = Hub(backend, queue_size=100, send_timeout=WAIT, max_connections=3)
    await hub.start()
    yield hub
    await hub.stop(deadline=0)


async def join_as(hub: Hub, wire: Wire, name: str, *channels: str) -> Client:
    """A client named `name` connects and subscribes to `channels` (default: "room");
    what it is sent lands on `wire`."""
    client = hub.connect(wire.send_for(name))
    for channel in channels or ("room",):
        await hub.subscribe(client, channel)
    return client


async def publish(hub: Hub, *numbers: int, channel: str = "room") -> None:
    for number in numbers:
        await hub.publish(channel, json_text(number), sender="test")


async def test_a_burst_goes_out_client_by_client_each_in_publish_order(hub: Hub) -> None:
    wire = Wire()
    names = ["a", "b", "c"]
    for name in names:
        await join_as(hub, wire, name)
    # Published in one event-loop step, as when a read brings several frames.
    await publish(hub, 1, 2, 3, 4)
    await wire.until(len(names) * 4)
    for name in names:
        assert wire.of(name) == [1, 2, 3, 4]
    # Each client's frames back to back (what lets the kernel coalesce them),
    # not message by message across every client.
    runs = [who for who, _ in itertools.groupby(who for who, _ in wire.frames)]
    assert sorted(runs) == names


async def test_a_client_gets_exactly_what_was_delivered_while_it_was_subscribed(
    hub: Hub,
) -> None:
    wire = Wire()
    early = await join_as(hub, wire, "early")
    # No await yields between these: all of it happens before the hub's flush.
    await publish(hub, 1)
    assert wire.frames == [], "sent at the end of the event-loop step, not at once"
    await join_as(hub, wire, "late")
    await publish(hub, 2)
    await hub.unsubscribe(early, "room")
    await publish(hub, 3)
    await wire.until(2 + 2)
    assert wire.of("early") == [1, 2]
    assert wire.of("late") == [2, 3]


def missed(backend: MemoryBackend, channel: str, *numbers: int) -> None:
    """Messages another process published while this one's backend was interrupted:
    in the channel's history, never delivered here."""
    for number in numbers:
        message = draft(channel, "elsewhere", "test", json_text(number))
        backend.history_store.append(channel, message)


async def test_after_an_interruption_what_was_missed_comes_first_then_what_was_held(
    hub: Hub, backend: MemoryBackend
) -> None:
    wire = Wire()
    await join_as(hub, wire, "a")
    await join_as(hub, wire, "b", "other")
    await publish(hub, 1, 2)
    await wire.until(2)
    hub.interrupted()
    missed(backend, "room", 3, 4)
    await publish(hub, 5)  # delivered while interrupted: held, not lost
    await publish(hub, 6, channel="other")
    hub.resumed()
    await publish(hub, 7)
    await wire.until(6 + 1)
    assert wire.of("a") == [1, 2, 3, 4, 5, 7]
    assert wire.of("b") == [6]
    offsets = [f["offset"] for who, f in wire.frames if who == "a"]
    assert offsets == [1, 2, 3, 4, 5, 6]


class FlakyHistory(MemoryBackend):
    """Its history reads fail `failures` times, as a Redis that times out would."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def history(self, channel: str, since: int | None, limit: int | None = None) -> History:
        if self.failures:
            self.failures -= 1
            raise BroadcastUnavailable("timed out")
        return await super().history(channel, since, limit)


async def test_a_catch_up_whose_history_read_failed_is_tried_again() -> None:
    backend = FlakyHistory(failures=0)
    hub = Hub(backend, queue_size=100, send_timeout=WAIT)
    await hub.start()
    try:
        wire = Wire()
        await join_as(hub, wire, "a")
        await publish(hub, 1)
        await wire.until(1)
        hub.interrupted()
        missed(backend, "room", 2, 3)
        backend.failures = 2
        hub.resumed()
        await wire.until(3)
        assert wire.of("a") == [1, 2, 3]
        assert backend.failures == 0
    finally:
        await hub.stop(deadline=0)


async def test_a_subscribe_whose_read_met_an_interruption_is_refused_and_keeps_nothing(
    hub: Hub, backend: MemoryBackend
) -> None:
    wire = Wire()
    await join_as(hub, wire, "early")
    client = hub.connect(wire.send_for("late"))
    reading = backend.history

    async def interrupted_meanwhile(
        channel: str, since: int | None, limit: int | None = None
    ) -> History:
        hub.interrupted()
        return await reading(channel, since, limit)

    backend.history = interrupted_meanwhile  # type: ignore[method-assign]
    with pytest.raises(BroadcastUnavailable):
        await hub.subscribe(client, "room")
    assert "room" not in client.channels
    assert hub.stats().channels == {"room": 1}


async def test_a_channel_whose_history_lost_what_was_missed_gets_one_resync(
    hub: Hub, backend: MemoryBackend
) -> None:
    wire = Wire()
    await join_as(hub, wire, "a", "room", "other")
    await publish(hub, 1)
    await wire.until(1)
    hub.interrupted()
    missed(backend, "room", *range(2, 2 + 100 + 1))  # one more than HISTORY_SIZE keeps
    hub.resumed()
    await publish(hub, 200)  # before the catching up: held, and in the history too
    await publish(hub, 300, channel="other")
    await wire.until(1 + 2)
    # The resync names where the channel is now, 200 included: a client reloads
    # its state up to there, and what follows the frame comes after it.
    assert wire.of("a") == [1, "resync", 300]
    resync = next(f for _, f in wire.frames if f["type"] == "resync")
    assert (resync["channel"], resync["offset"]) == ("room", 103)
    await publish(hub, 400)
    await wire.until(1 + 3)
    assert wire.of("a")[-1] == 400


async def test_a_frame_for_one_client_comes_after_what_its_channels_were_delivered_before(
    hub: Hub,
) -> None:
    wire = Wire()
    sender = await join_as(hub, wire, "sender", "room", "side")
    await join_as(hub, wire, "other")
    await publish(hub, 1)
    await publish(hub, 10, channel="side")
    hub.send_to(sender, json_text({"type": "reply", "id": 1}))
    await publish(hub, 2)
    await wire.until(3 + 1 + 2)
    received = wire.of("sender")
    assert set(received[:2]) == {1, 10}, "its channels' messages, in either order"
    assert received[2:] == ["reply", 2]
    assert wire.of("other") == [1, 2]


async def test_channels_do_not_mix_in_a_burst(hub: Hub) -> None:
    wire = Wire()
    await join_as(hub, wire, "a", "one")
    await join_as(hub, wire, "b", "two")
    await publish(hub, 1, 2, channel="one")
    await publish(hub, 3, channel="two")
    await publish(hub, 4, channel="one")
    await wire.until(4)
    assert wire.of("a") == [1, 2, 4]
    assert wire.of("b") == [3]


async def test_a_client_on_several_channels_gets_each_channels_messages(hub: Hub) -> None:
    wire = Wire()
    await join_as(hub, wire, "many", "one", "two", "three")
    await join_as(hub, wire, "single", "two")
    await publish(hub, 1, channel="one")
    await publish(hub, 2, channel="two")
    await publish(hub, 3, channel="three")
    await publish(hub, 4, channel="elsewhere")
    await wire.until(3 + 1)
    assert set(zip(wire.channels_of("many"), wire.of("many"), strict=True)) == {
        ("one", 1),
        ("two", 2),
        ("three", 3),
    }
    assert len(wire.of("many")) == 3
    assert wire.of("single") == [2]
    assert hub.stats().channels == {"one": 1, "two": 2, "three": 1}


async def test_unsubscribing_stops_that_channel_only(hub: Hub, backend: MemoryBackend) -> None:
    wire = Wire()
    client = await join_as(hub, wire, "a", "one", "two")
    await hub.unsubscribe(client, "one")
    assert client.channels == {"two"}
    assert backend.channels == {"two"}, "its last subscriber left: the backend lets go"
    await publish(hub, 1, channel="one")
    await publish(hub, 2, channel="two")
    await wire.until(1)
    assert wire.of("a") == [2]
    # Idempotent: a channel it is not subscribed to is already left.
    await hub.unsubscribe(client, "one")
    await hub.unsubscribe(client, "never")
    assert hub.stats().channels == {"two": 1}


async def test_a_channel_stays_with_the_backend_while_any_local_client_wants_it(
    hub: Hub, backend: MemoryBackend
) -> None:
    wire = Wire()
    a = await join_as(hub, wire, "a", "shared")
    b = await join_as(hub, wire, "b", "shared")
    await hub.unsubscribe(a, "shared")
    assert backend.channels == {"shared"}
    await hub.unsubscribe(b, "shared")
    assert backend.channels == frozenset()


async def test_disconnect_releases_every_channel_from_the_backend(
    hub: Hub, backend: MemoryBackend
) -> None:
    wire = Wire()
    leaving = await join_as(hub, wire, "leaving", "one", "two", "three")
    await join_as(hub, wire, "staying", "three")
    assert backend.channels == {"one", "two", "three"}
    await hub.disconnect(leaving)
    assert backend.channels == {"three"}
    assert hub.stats().clients == 1
    assert hub.stats().channels == {"three": 1}
    await publish(hub, 1, channel="three")
    await publish(hub, 2, channel="one")
    await wire.until(1)
    assert wire.of("leaving") == []
    assert wire.of("staying") == [1]
    await hub.disconnect(leaving)  # idempotent
    assert hub.stats().clients == 1


async def test_connect_beyond_max_connections_raises_hub_full(hub: Hub) -> None:
    wire = Wire()
    clients = [hub.connect(wire.send_for(name)) for name in "abc"]
    with pytest.raises(HubFull):
        hub.connect(wire.send_for("d"))
    assert hub.connections == 3
    await hub.disconnect(clients[0])
    hub.connect(wire.send_for("d"))
    assert hub.connections == 3


async def test_a_stopped_hub_takes_no_connections_or_subscriptions(hub: Hub) -> None:
    wire = Wire()
    client = hub.connect(wire.send_for("before"))
    await hub.stop(deadline=0)
    with pytest.raises(HubStopped):
        hub.connect(wire.send_for("after"))
    with pytest.raises(HubStopped):
        await hub.subscribe(client, "room")


async def test_publishing_to_channels_nobody_subscribes_leaves_no_channel_state(
    hub: Hub, backend: MemoryBackend
) -> None:
    for n in range(1_000):
        await hub.publish(f"nobody-{n}", "1", sender="test")
    assert hub.stats().channels == {}
    assert backend.channels == frozenset()


async def test_memory_stays_bounded_however_many_channel_names_are_published_to() -> None:
    # History is bounded in bytes, whatever the number of channels. A small
    # bound keeps this quick; what is checked is that memory stops growing at
    # the bound: 10x the names must not cost 10x the memory.
    few, many = 500, 5_000

    async def retained_after_publishing_to(names: int) -> int:
        backend = MemoryBackend(MemoryHistory(100, 300.0, max_bytes=64 * 1024))
        hub = Hub(backend, queue_size=1, send_timeout=WAIT)
        await hub.start()
        gc.collect()
        tracemalloc.start()
        try:
            for n in range(names):
                await hub.publish(f"name-{n}", "1", sender="test")
            gc.collect()
            retained, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        await hub.stop(deadline=0)
        return retained

    retained_few = await retained_after_publishing_to(few)
    retained_many = await retained_after_publishing_to(many)
    assert retained_many < 2 * retained_few, (retained_few, retained_many)
