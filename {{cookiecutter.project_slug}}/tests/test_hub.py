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
from {{ cookiecutter.package_name }}.broadcast.envelope import Position, draft, json_text
from {{ cookiecutter.package_name }}.broadcast.history import History, MemoryHistory
from {{ cookiecutter.package_name }}.broadcast.hub import Hub, HubFull, HubStopped, Refusal, Via
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


class FanOuts:
    """HubMetrics recording each `fanned_out`: (frames, the data of the message it names)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, object]] = []

    def fanned_out(self, frames: int, message: str) -> None:
        self.calls.append((frames, json.loads(message)["data"]))

    def started(self) -> None: ...
    def stopped(self) -> None: ...
    def published(self, via: Via) -> None: ...
    def closed(self, code: int) -> None: ...
    def refused(self, reason: Refusal) -> None: ...
    def bad_frame(self) -> None: ...
    def resumed(self) -> None: ...
    def caught_up(self, recovered: int, resynced: int) -> None: ...


async def test_a_burst_is_one_fan_out_to_the_metrics_named_by_its_first_message(
    hub: Hub,
) -> None:
    """What the delivery latency histogram observes (README, Metrics): once per channel
    and event-loop step, the oldest message's age; every frame is counted."""
    fan_outs = FanOuts()
    hub.metrics = fan_outs
    wire = Wire()
    for name in ("a", "b"):
        await join_as(hub, wire, name)
    await publish(hub, 1, 2, 3)  # one event-loop step
    await wire.until(2 * 3)
    await publish(hub, 4)
    await wire.until(2 * 4)
    assert fan_outs.calls == [(2 * 3, 1), (2, 4)]


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


# --- Recovery when interruptions meet reads -------------------------------------


async def test_what_a_history_read_sent_is_not_sent_again_when_its_delivery_comes_late(
    hub: Hub, backend: MemoryBackend
) -> None:
    wire = Wire()
    await join_as(hub, wire, "a")
    await publish(hub, 1)
    await wire.until(1)
    # With Redis, the reply to a read comes on another connection than the
    # pub/sub messages, and can overtake them: 2 and 3 are read before delivered.
    stored = [
        backend.history_store.append("room", draft("room", "elsewhere", "test", json_text(n)))
        for n in (2, 3)
    ]
    epoch = stored[0][0].epoch
    recovering = hub.connect(wire.send_for("recovering"))
    plain = hub.connect(wire.send_for("plain"))
    recovered = await hub.subscribe(recovering, "room", Position(1, epoch))
    replied = await hub.subscribe(plain, "room")
    assert recovered is not None
    assert replied is not None
    assert (recovered.recovered, replied.position.offset) == (True, 3)
    for position, text in stored:
        hub.deliver("room", text, position)
    await publish(hub, 4)
    await wire.until(4 + 3 + 1)
    assert offsets_of(wire, "a") == [1, 2, 3, 4]
    assert offsets_of(wire, "recovering") == [2, 3, 4]
    assert offsets_of(wire, "plain") == [4], "after the offset its reply named"


class Paused(MemoryBackend):
    """The in-memory backend with history reads a test can hold at a gate, or fail.

    While `gate` is clear a read waits there (`waiting` says one does), and
    reads Redis's state as it is once the gate opens: a reply in flight while
    the subscriber connection drops; `answered` is set once it has read.
    `failures` is how many reads still fail, as they do while Redis is slow
    or a pooled connection turned out dead.
    """

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = asyncio.Event()
        self.answered = asyncio.Event()
        self.failures = 0

    async def history(self, channel: str, since: int | None, limit: int | None = None) -> History:
        if not self.gate.is_set():
            self.waiting.set()
            await self.gate.wait()
            self.waiting.clear()
        if self.failures:
            self.failures -= 1
            raise BroadcastUnavailable("read failed")
        history = await super().history(channel, since, limit)
        self.answered.set()
        return history


@pytest.fixture
def paused() -> Paused:
    return Paused()


@pytest.fixture
async def paused_hub(paused: Paused) -> AsyncIterator[Hub]:
    hub = Hub(paused, queue_size=100, send_timeout=WAIT)
    await hub.start()
    yield hub
    await hub.stop(deadline=0)


def offsets_of(wire: Wire, name: str) -> list[object]:
    return [f["offset"] for who, f in wire.frames if who == name and f["type"] == "message"]


@pytest.mark.parametrize("since", [None, 2])
async def test_a_subscribe_whose_history_read_spans_an_interruption_repeats_nothing(
    paused_hub: Hub, paused: Paused, since: int | None
) -> None:
    hub = paused_hub
    wire = Wire()
    await join_as(hub, wire, "a")
    await publish(hub, 1, 2)
    await wire.until(2)
    epoch = (await paused.history("room", None)).position.epoch
    b = hub.connect(wire.send_for("b"))
    paused.gate.clear()
    joining = asyncio.create_task(
        hub.subscribe(b, "room", None if since is None else Position(since, epoch))
    )
    async with asyncio.timeout(WAIT):
        await paused.waiting.wait()
    # The subscriber connection drops while the read is on its way; it reads
    # what was published meanwhile, which the hub's channel has not had.
    hub.interrupted()
    missed(paused, "room", 3, 4)
    paused.gate.set()
    hub.resumed()
    async with asyncio.timeout(WAIT):
        outcome = await joining
    assert outcome is not None
    assert outcome.position.offset == 4
    await publish(hub, 5)
    await wire.until(5 + (3 if since is not None else 1))
    assert offsets_of(wire, "a") == [1, 2, 3, 4, 5]
    assert offsets_of(wire, "b") == ([3, 4, 5] if since is not None else [5])


async def interrupted_after_one(hub: Hub, paused: Paused) -> Wire:
    """Client "a" on "room" got message 1; then the backend is interrupted and another
    process publishes 2 (in the history, never delivered here). What "a" is sent."""
    wire = Wire()
    await join_as(hub, wire, "a")
    await publish(hub, 1)
    await wire.until(1)
    hub.interrupted()
    missed(paused, "room", 2)
    return wire


async def test_an_interruption_during_the_catching_up_loses_nothing(
    paused_hub: Hub, paused: Paused
) -> None:
    hub = paused_hub
    wire = await interrupted_after_one(hub, paused)
    paused.gate.clear()
    hub.resumed()
    async with asyncio.timeout(WAIT):
        await paused.waiting.wait()
    hub.interrupted()  # lost again before the catching up read the history
    paused.answered.clear()
    paused.gate.set()
    # The catching up that was on its way reads while disconnected (it handles
    # the answer in the step it arrives): what is published from here until
    # the next `resumed` must not be skipped.
    async with asyncio.timeout(WAIT):
        await paused.answered.wait()
    missed(paused, "room", 3)
    hub.resumed()
    await publish(hub, 4)
    await wire.until(4)
    assert offsets_of(wire, "a") == [1, 2, 3, 4]
    assert "resync" not in wire.of("a")


async def test_a_catching_up_read_that_fails_while_connected_is_tried_again(
    paused_hub: Hub, paused: Paused
) -> None:
    hub = paused_hub
    wire = await interrupted_after_one(hub, paused)
    paused.failures = 2  # Redis answers the reads only after a while
    hub.resumed()
    await publish(hub, 3)
    await wire.until(3)
    assert offsets_of(wire, "a") == [1, 2, 3]


async def test_the_last_subscriber_leaving_while_another_reads_history_keeps_the_channel(
    paused_hub: Hub, paused: Paused
) -> None:
    hub = paused_hub
    wire = Wire()
    a = await join_as(hub, wire, "a")
    await publish(hub, 1)
    await wire.until(1)
    b = hub.connect(wire.send_for("b"))
    paused.gate.clear()
    joining = asyncio.create_task(hub.subscribe(b, "room", None))
    async with asyncio.timeout(WAIT):
        await paused.waiting.wait()
    await hub.unsubscribe(a, "room")
    assert paused.channels == {"room"}, "b is joining: the backend keeps the channel"
    paused.gate.set()
    async with asyncio.timeout(WAIT):
        await joining
    await publish(hub, 2)
    await wire.until(2)
    assert wire.of("b") == [2]


async def test_a_client_that_leaves_during_its_history_read_leaves_nothing_behind(
    paused_hub: Hub, paused: Paused
) -> None:
    hub = paused_hub
    wire = Wire()
    b = hub.connect(wire.send_for("b"))
    paused.gate.clear()
    joining = asyncio.create_task(hub.subscribe(b, "room", None))
    async with asyncio.timeout(WAIT):
        await paused.waiting.wait()
    await hub.disconnect(b)
    paused.gate.set()
    async with asyncio.timeout(WAIT):
        assert await joining is None
    assert paused.channels == frozenset()
    assert hub.stats().channels == {}


async def test_a_channel_whose_last_client_leaves_during_the_catching_up_is_let_go(
    paused_hub: Hub, paused: Paused
) -> None:
    hub = paused_hub
    wire = Wire()
    a = await join_as(hub, wire, "a")
    stays = await join_as(hub, wire, "stays", "other")
    hub.interrupted()
    missed(paused, "other", 1)
    paused.gate.clear()
    hub.resumed()
    async with asyncio.timeout(WAIT):
        await paused.waiting.wait()
    await hub.disconnect(a)
    paused.gate.set()
    await wire.until(1)
    assert wire.of("stays") == [1]
    assert paused.channels == {"other"}
    assert hub.stats().channels == {"other": 1}
    await hub.disconnect(stays)


def forged(offset: int, data: int, epoch: str) -> tuple[str, Position]:
    """A message for "room" that claims `offset`, as someone writing to the backend could."""
    position = Position(offset, epoch)
    return draft("room", "0123456789ab", "forger", json_text(data)).complete(position), position


async def test_a_live_channel_never_goes_backwards_and_a_gap_is_filled_from_the_history(
    hub: Hub, backend: MemoryBackend
) -> None:
    wire = Wire()
    await join_as(hub, wire, "a")
    await publish(hub, 1)
    await wire.until(1)
    epoch = wire.frames[0][1]["epoch"]
    assert isinstance(epoch, str)
    hub.deliver("room", *forged(1, 666, epoch))  # a duplicate
    hub.deliver("room", *forged(1000, 777, epoch))  # past what the history holds
    hub.deliver("room", *forged(2, 888, "feedf00d"))  # another epoch
    missed(backend, "room", 2)  # lost on the way: in the history, never delivered
    await publish(hub, 3)
    await publish(hub, 4)
    await wire.until(4)
    assert wire.of("a") == [1, 2, 3, 4]
    assert [f["offset"] for _, f in wire.frames] == [1, 2, 3, 4]
