"""The hub's fan-out on its own: who gets which frames, in which order, in what grouping.

Clients here are recording `send` functions, so a test sees every frame the
hub hands to the server and the order it hands them over in.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator

import pytest
from starlette.types import Message

from {{ cookiecutter.package_name }}.broadcast.client import Client, Send
from {{ cookiecutter.package_name }}.broadcast.envelope import json_text
from {{ cookiecutter.package_name }}.broadcast.hub import Hub
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
        """What `name` received after its welcome: message data, or a frame's type."""
        frames = [frame for who, frame in self.frames if who == name]
        return [f["data"] if f["type"] == "message" else f["type"] for f in frames[1:]]

    async def until(self, count: int) -> None:
        """Wait until `count` frames have been sent in all."""
        async with asyncio.timeout(WAIT):
            while len(self.frames) < count:
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    hub = Hub(MemoryBackend(), queue_size=100, send_timeout=WAIT, max_message_size=65_536)
    await hub.start()
    yield hub
    await hub.stop(deadline=0)


async def join_as(hub: Hub, wire: Wire, name: str, channel: str = "room") -> Client:
    """A client named `name` joins `channel`; what it is sent lands on `wire`."""
    return await hub.join(channel, wire.send_for(name))


async def publish(hub: Hub, *numbers: int, channel: str = "room") -> None:
    for number in numbers:
        await hub.publish(channel, json_text(number), sender="test")


async def test_a_burst_goes_out_client_by_client_each_in_publish_order(hub: Hub) -> None:
    wire = Wire()
    names = ["a", "b", "c"]
    for name in names:
        await join_as(hub, wire, name)
    await wire.until(len(names))
    # Published in one event-loop step, as when a read brings several frames.
    await publish(hub, 1, 2, 3, 4)
    await wire.until(len(names) * 5)
    for name in names:
        assert wire.of(name) == [1, 2, 3, 4]
    # Each client's frames back to back (what lets the kernel coalesce them),
    # not message by message across every client.
    runs = [who for who, _ in itertools.groupby(who for who, _ in wire.frames[len(names) :])]
    assert sorted(runs) == names


async def test_a_client_gets_exactly_what_was_delivered_while_it_was_a_member(
    hub: Hub,
) -> None:
    wire = Wire()
    early = await join_as(hub, wire, "early")
    await wire.until(1)
    # No await yields between these: all of it happens before the hub's flush.
    await publish(hub, 1)
    assert len(wire.frames) == 1, "sent at the end of the event-loop step, not at once"
    await join_as(hub, wire, "late")
    await publish(hub, 2)
    await hub.leave(early)
    await publish(hub, 3)
    await wire.until(2 + 3 + 1)
    assert wire.of("early") == [1, 2]
    assert wire.of("late") == [2, 3]


async def test_a_resync_comes_after_the_messages_delivered_before_it(hub: Hub) -> None:
    wire = Wire()
    await join_as(hub, wire, "a")
    await join_as(hub, wire, "b", channel="other")
    await wire.until(2)
    await publish(hub, 1, 2)
    hub.resync()
    await publish(hub, 3)
    await wire.until(2 + 4 + 1)
    assert wire.of("a") == [1, 2, "resync", 3]
    assert wire.of("b") == ["resync"]


async def test_a_frame_for_one_client_comes_after_what_was_delivered_before_it(
    hub: Hub,
) -> None:
    wire = Wire()
    sender = await join_as(hub, wire, "sender")
    await join_as(hub, wire, "other")
    await wire.until(2)
    await publish(hub, 1)
    hub.send_to(sender, json_text({"type": "error", "error": "invalid_json"}))
    await publish(hub, 2)
    await wire.until(2 + 3 + 2)
    assert wire.of("sender") == [1, "error", 2]
    assert wire.of("other") == [1, 2]


async def test_channels_do_not_mix_in_a_burst(hub: Hub) -> None:
    wire = Wire()
    await join_as(hub, wire, "a", channel="one")
    await join_as(hub, wire, "b", channel="two")
    await wire.until(2)
    await publish(hub, 1, 2, channel="one")
    await publish(hub, 3, channel="two")
    await publish(hub, 4, channel="one")
    await wire.until(2 + 4)
    assert wire.of("a") == [1, 2, 4]
    assert wire.of("b") == [3]
