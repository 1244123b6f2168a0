"""The hub: this process's WebSocket connections and their channels, fed by one backend.

A connection (a `Client`) joins the hub once and subscribes to any number of
channels. Channels are reference-counted: the backend subscribes a channel for its
first local client and unsubscribes it after its last. Publishing builds and
serialises the envelope once; every process's hub receives that string from
the backend and fans it out to its clients without awaiting any socket
(see `client.py` for how a send avoids waiting).

Fan-out happens at the end of the event-loop step in which messages arrive,
client by client: when a burst brings several messages at once, each client's
frames are written back to back instead of cycling through every client once
per message. In bursts that cuts the server's CPU per frame by a third to two
thirds (benchmarks/README.md): each connection's state (uvicorn's protocol,
the transport, the kernel's socket) is touched once per step, while it is hot
in the CPU's caches, rather than once per message.
Each client still sees every channel's messages in publish order, and a
client gets exactly the messages delivered while it is subscribed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import status
from starlette.types import Message

from .backend import Backend, BroadcastUnavailable
from .client import Client, Gone, Send, WriteFrame, text_frame
from .envelope import json_text, message_frame, resync_frame

logger = logging.getLogger(__name__)

# How many channels' sequence numbers a process remembers; a channel it has
# not published to for longer starts again at 1 (a new `seq` run).
SEQUENCES_KEPT = 65_536


class HubStopped(BroadcastUnavailable):
    """The hub is shutting down or has stopped; it takes no new clients."""


class HubFull(Exception):
    """The hub holds `max_connections` clients already; it takes no more."""


@dataclass
class _Channel:
    members: set[Client] = field(default_factory=set)
    # Serialises subscribe/unsubscribe of this channel with the backend.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    subscribed: bool = False
    joining: int = 0


@dataclass(frozen=True)
class HubStats:
    """A snapshot of the hub, for probes and tests."""

    clients: int
    # Local subscribers per channel.
    channels: dict[str, int]
    # Messages waiting in client backlogs, and clients whose socket pushes back.
    backlog: int
    pushing_back: int


class Hub:
    """Local clients and their channels; a `Receiver` for the backend."""

    def __init__(
        self,
        backend: Backend,
        *,
        queue_size: int,
        send_timeout: float,
        max_connections: int | None = None,
    ) -> None:
        # Names this process in every envelope it publishes.
        self.origin = uuid.uuid4().hex[:12]
        self._backend = backend
        self._queue_size = queue_size
        self._send_timeout = send_timeout
        self._max_connections = max_connections
        self._state: Literal["new", "running", "stopping", "stopped"] = "new"
        self._start_lock = asyncio.Lock()
        self._clients: set[Client] = set()
        self._channels: dict[str, _Channel] = {}
        # Frames delivered in this event-loop step, by channel, for `_flush`.
        self._pending: dict[str, list[Message]] = {}
        self._flush_scheduled = False
        self._sequences: OrderedDict[str, int] = OrderedDict()
        self._empty = asyncio.Event()
        self._empty.set()

    async def start(self) -> None:
        """Start the backend; idempotent. Raises HubStopped after `stop`."""
        async with self._start_lock:
            if self._state == "new":
                await self._backend.start(self)
                self._state = "running"
            elif self._state != "running":
                raise HubStopped("the broadcast hub is shutting down")

    async def stop(self, deadline: float) -> None:
        """Refuse new clients, close every client with 1012, wait up to `deadline`
        seconds for them to leave, then stop the backend. Idempotent."""
        if self._state in ("stopping", "stopped"):
            return
        started = self._state == "running"
        self._state = "stopping"
        self._flush()  # what was delivered before the stop still goes out first
        for client in self._clients:
            client.close(status.WS_1012_SERVICE_RESTART, "server shutting down")
        try:
            async with asyncio.timeout(deadline):
                await self.wait_empty()
        except TimeoutError:
            logger.warning(
                "shutdown: %d WebSocket client(s) still open after %gs",
                len(self._clients),
                deadline,
            )
            await asyncio.gather(*(c.stop_writing() for c in self._clients))
        if started:
            await self._backend.stop()
        self._state = "stopped"

    async def wait_empty(self) -> None:
        """Return once no client is connected (at once if none is)."""
        await self._empty.wait()

    async def ready(self) -> str | None:
        """A readiness check: None when the backend can publish and subscribe."""
        if self._state in ("stopping", "stopped"):
            return "the broadcast hub is shutting down"
        await self.start()
        return self._backend.ready()

    @property
    def connections(self) -> int:
        """Clients connected to this process now."""
        return len(self._clients)

    def connect(
        self, send: Send, gone: Gone | None = None, write_frame: WriteFrame | None = None
    ) -> Client:
        """Register a connection whose frames go through `send`; it has no channels yet.

        `gone`, when the server offers one, says whether the connection is lost;
        `write_frame`, whether it takes a fan-out's ready-made frame as it is.
        Never blocks. Raises HubStopped while shutting down, HubFull at
        `max_connections`; `disconnect` must follow every successful call.
        """
        if self._state in ("stopping", "stopped"):
            raise HubStopped("the broadcast hub is shutting down")
        if self._max_connections is not None and len(self._clients) >= self._max_connections:
            raise HubFull(f"{self._max_connections} connections already open")
        client = Client(
            uuid.uuid4().hex[:12],
            send,
            queue_size=self._queue_size,
            send_timeout=self._send_timeout,
            gone=gone,
            write_frame=write_frame,
        )
        self._clients.add(client)
        self._empty.clear()
        return client

    async def disconnect(self, client: Client) -> None:
        """Unsubscribe `client` from every channel and forget it; idempotent, never raises."""
        for channel in list(client.channels):
            await self.unsubscribe(client, channel)
        self._clients.discard(client)
        if not self._clients:
            self._empty.set()

    async def subscribe(self, client: Client, channel: str) -> None:
        """Make `client` a subscriber of `channel`; returns once the subscription is live.

        Subscribes the backend for the channel's first local subscriber. The
        client receives exactly the messages delivered from now until it
        unsubscribes. Raises HubStopped while shutting down, and
        BroadcastUnavailable when the backend cannot subscribe (nothing is kept).
        """
        await self.start()
        entry = self._channels.get(channel)
        if entry is None:
            entry = self._channels[channel] = _Channel()
        entry.joining += 1
        try:
            async with entry.lock:
                if self._state != "running":
                    raise HubStopped("the broadcast hub is shutting down")
                if not entry.subscribed:
                    await self._backend.subscribe(channel)
                    entry.subscribed = True
        finally:
            entry.joining -= 1
            self._forget_if_unused(channel, entry)
        if client not in self._clients:
            # It disconnected while the backend subscribed: nothing to keep.
            await self._release(channel, entry)
            return
        self._flush_channel(channel)  # delivered before it subscribed: not for it
        entry.members.add(client)
        client.channels.add(channel)

    async def unsubscribe(self, client: Client, channel: str) -> None:
        """Stop sending `channel` to `client`: nothing of it follows this call's return.

        Unsubscribes the backend after the channel's last local subscriber.
        Idempotent; an unsubscribe failure is logged, never raised.
        """
        entry = self._channels.get(channel)
        client.channels.discard(channel)
        if entry is None or client not in entry.members:
            return
        self._flush_channel(channel)  # delivered while it was subscribed: still its own
        entry.members.discard(client)
        await self._release(channel, entry)

    async def _release(self, channel: str, entry: _Channel) -> None:
        """Unsubscribe the backend from `channel` if no local client wants it any more."""
        if not entry.members:
            async with entry.lock:
                if not entry.members and entry.subscribed:
                    entry.subscribed = False
                    try:
                        await self._backend.unsubscribe(channel)
                    except Exception:
                        logger.warning("unsubscribing channel %r failed", channel, exc_info=True)
            self._forget_if_unused(channel, entry)

    async def publish(self, channel: str, data_json: str, sender: str) -> int:
        """Publish `data_json` (valid JSON text) to `channel` in every process; return its seq.

        Needs no subscriber. Raises BroadcastUnavailable at once when the
        backend cannot publish.
        """
        if self._state != "running":  # the start lock only until started
            await self.start()
        seq = self._sequences.pop(channel, 0) + 1
        self._sequences[channel] = seq
        if len(self._sequences) > SEQUENCES_KEPT:
            self._sequences.popitem(last=False)
        await self._backend.publish(
            channel, message_frame(channel, seq, self.origin, sender, data_json)
        )
        return seq

    async def announce(self, channel: str, data: Any, sender: str) -> bool:
        """Publish `data` as JSON, best effort: an outage is logged and returns False."""
        try:
            await self.publish(channel, json_text(data), sender)
        except BroadcastUnavailable as exc:
            logger.warning("could not announce on channel %r: %s", channel, exc)
            return False
        return True

    def deliver(self, channel: str, message: str) -> None:
        """Fan one serialised envelope out to the channel's subscribers; never blocks.

        The frame goes out at the end of this event-loop step, with any others
        delivered in it (see the module's docstring).
        """
        if channel in self._channels:
            self._queue(channel, {"type": "websocket.send", "text": message})

    def send_to(self, client: Client, text: str) -> None:
        """Send a frame to `client` alone (a reply, an error), after what its
        channels were delivered before it; never blocks."""
        for channel in client.channels:
            if channel in self._pending:
                self._flush_channel(channel)
        client.offer({"type": "websocket.send", "text": text})

    def resync(self) -> None:
        """Tell every subscriber that messages may have been missed (a `resync` per channel)."""
        reason = "the broadcast backend reconnected; messages may have been missed"
        for channel in self._channels:
            self._queue(
                channel,
                {"type": "websocket.send", "text": resync_frame(channel, self.origin, reason)},
            )

    def _queue(self, channel: str, frame: Message) -> None:
        pending = self._pending.get(channel)
        if pending is None:
            self._pending[channel] = [frame]
        else:
            pending.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Offer every pending frame: all of one client's, then the next client's."""
        self._flush_scheduled = False
        while self._pending:
            self._flush_channel(next(iter(self._pending)))

    def _flush_channel(self, channel: str) -> None:
        frames = self._pending.pop(channel, None)
        entry = self._channels.get(channel)
        if not frames or entry is None or not entry.members:
            return
        # Framed once here rather than by the server for every client.
        framed = [text_frame(frame["text"]) for frame in frames]
        # offer() never awaits and never changes membership, so the set
        # cannot change under this loop.
        if len(frames) == 1:  # the common case, paced publishing: no pairing per client
            frame, ready = frames[0], framed[0]
            for client in entry.members:
                client.offer(frame, ready)
            return
        pairs = list(zip(frames, framed, strict=True))
        for client in entry.members:
            for frame, ready in pairs:
                client.offer(frame, ready)

    def stats(self) -> HubStats:
        return HubStats(
            clients=len(self._clients),
            channels={name: len(e.members) for name, e in self._channels.items() if e.members},
            backlog=sum(c.backlog for c in self._clients),
            pushing_back=sum(c.pushing_back for c in self._clients),
        )

    def _forget_if_unused(self, channel: str, entry: _Channel) -> None:
        unused = not entry.members and not entry.joining and not entry.subscribed
        if unused and self._channels.get(channel) is entry:
            del self._channels[channel]
