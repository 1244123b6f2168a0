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
Each client still sees every channel's messages in offset order, and a
client gets exactly the messages delivered while it is subscribed.

Recovery. A subscribe `since` a position (an offset and epoch the client
saw) subscribes live first and holds what arrives for that client, reads
the channel's history after `since`, then sends the missed messages, then
the held ones it has not just been sent (by offset), then live ones: no gap,
no duplicate, even while publishing goes on. When the backend loses its
subscriptions (`interrupted`) every channel's deliveries are held; once it
has them back (`resumed`) each channel is caught up the same way from the
last offset delivered here, and only a channel whose history cannot cover
the gap gets a `resync` frame. A catching up whose read fails, or that
another interruption overtakes, leaves the channel held and tries again.
A read can run ahead of what this process has been delivered (with Redis,
its reply comes on another connection than the pub/sub messages, and can
overtake them): the new subscriber is then skipped for what it has until a
later message arrives.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

from fastapi import status
from starlette.types import Message

from .backend import Backend, BroadcastUnavailable
from .client import Client, Gone, Send, WriteFrame, text_frame
from .envelope import SENDER, Position, draft, json_text, resync_frame
from .history import History

logger = logging.getLogger(__name__)

# A frame for a channel's subscribers, and the position of the message it
# carries (None for a frame that is not a message: `resync`).
_Frame = tuple[Message, Position | None]

# Deliveries a channel holds while it is caught up; past this it gives up
# and sends `resync` instead (a bound on memory during a long recovery).
HELD_LIMIT = 10_000
# Channels caught up at once after the backend resumed: bounded, so that a
# process with thousands of channels does not send Redis thousands of reads at once.
RECOVERY_CONCURRENCY = 32
# Seconds a subscribe waits for its channel to be caught up before giving up.
RECOVERY_WAIT = 5.0
# Seconds before reading a channel's history again when catching it up failed
# while the backend stayed connected, doubling up to the maximum.
RECOVERY_RETRY_DELAY = 0.1
RECOVERY_RETRY_MAX_DELAY = 5.0


# How a message came to be published: by a WebSocket client, over HTTP, or by
# the server's own work (a job, a notification).
Via = Literal["websocket", "http", "job"]
# Why a WebSocket handshake was refused with an HTTP status.
Refusal = Literal["origin", "full"]


class HubMetrics(Protocol):
    """What the hub and its sessions report when metrics are on (metrics/websocket.py).

    Called on cold paths, except `fanned_out`: once per channel and event-loop
    step (the messages delivered in it, named by the first), with how many
    frames went to clients, never once per frame.
    `started` comes when the hub starts or takes its first client, whichever
    is first, and may come twice; `stopped` once it has stopped.
    """

    def started(self) -> None: ...
    def stopped(self) -> None: ...
    def published(self, via: Via) -> None: ...
    def fanned_out(self, frames: int, message: str) -> None: ...
    def closed(self, code: int) -> None: ...
    def refused(self, reason: Refusal) -> None: ...
    def bad_frame(self) -> None: ...
    def resumed(self) -> None: ...
    def caught_up(self, recovered: int, resynced: int) -> None: ...


class HubStopped(BroadcastUnavailable):
    """The hub is shutting down or has stopped; it takes no new clients."""


class HubFull(Exception):
    """The hub holds `max_connections` clients already; it takes no more."""


class Subscribed(NamedTuple):
    """The outcome of a subscribe: the channel's position when it went live, and
    whether everything after the client's `since` was sent (None: it gave none)."""

    position: Position
    recovered: bool | None


@dataclass
class _Channel:
    members: set[Client] = field(default_factory=set)
    # Serialises subscribe/unsubscribe of this channel with the backend.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    subscribed: bool = False
    joining: int = 0
    # The latest position delivered to this process (or read, before any delivery).
    position: Position | None = None
    # Subscribers being caught up: what is delivered meanwhile, held for each.
    recovering: dict[Client, list[_Frame]] = field(default_factory=dict)
    # Members that were sent messages this process has not been delivered yet:
    # the last position each has, until a later one is delivered.
    ahead: dict[Client, Position] = field(default_factory=dict)
    # While the backend is interrupted or the channel is caught up: deliveries held.
    held: list[_Frame] | None = None
    overflowed: bool = False
    # Held for a gap on a subscription that stayed live (not an interruption):
    # nothing was lost on the way, so a new epoch is followed from its start.
    gap: bool = False
    # Set while nothing is held; a subscribe waits for it.
    live: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.live.set()


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
        self._pending: dict[str, list[_Frame]] = {}
        self._flush_scheduled = False
        self._recovery: asyncio.Task[None] | None = None
        # Interruptions so far, and whether the backend has resumed since the last:
        # a catching up releases a channel only if neither changed during its read.
        self._interruptions = 0
        self._connected = True
        self._resume_again = False
        self._empty = asyncio.Event()
        self._empty.set()
        # Set by metrics/websocket.py when metrics are on; None costs nothing.
        self.metrics: HubMetrics | None = None

    async def start(self) -> None:
        """Start the backend; idempotent. Raises HubStopped after `stop`."""
        async with self._start_lock:
            if self._state == "new":
                await self._backend.start(self)
                self._state = "running"
                if self.metrics is not None:
                    self.metrics.started()
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
        if self._recovery is not None:
            self._recovery.cancel()
        if started:
            await self._backend.stop()
        self._state = "stopped"
        if self.metrics is not None:
            self.metrics.stopped()

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
        if self.metrics is not None and self._state == "new":
            # Without a lifespan the hub starts on first use, which a client
            # that only connects is not: its metrics start with it anyway.
            self.metrics.started()
        return client

    async def disconnect(self, client: Client) -> None:
        """Unsubscribe `client` from every channel and forget it; idempotent, never raises."""
        for channel in list(client.channels):
            await self.unsubscribe(client, channel)
        self._clients.discard(client)
        if not self._clients:
            self._empty.set()

    async def subscribe(
        self,
        client: Client,
        channel: str,
        since: Position | None = None,
        answer: Callable[[Subscribed], str] | None = None,
    ) -> Subscribed | None:
        """Make `client` a subscriber of `channel`; returns once the subscription is live.

        Subscribes the backend for the channel's first local subscriber. With
        `since`, the client first gets every message after it, if the history
        still holds them all (`recovered` True), then live ones with no gap
        and no duplicate. `answer`, given the outcome, makes the frame the
        client gets before any message of the channel (the command's reply).
        Returns None when the client left meanwhile. Raises HubStopped while
        shutting down, and BroadcastUnavailable when the backend cannot
        subscribe or read (nothing is kept).
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
            if not entry.live.is_set():
                await self._wait_live(entry)
            self._flush_channel(channel)  # delivered before it subscribed: not for it
            held: list[_Frame] = []
            entry.recovering[client] = held
            try:
                history = await self._backend.history(channel, since.offset if since else None)
            finally:
                self._flush_channel(channel)  # delivered during the read: held for it
                del entry.recovering[client]
        except BaseException:
            entry.joining -= 1
            await self._release(channel, entry)
            raise
        entry.joining -= 1
        if client not in self._clients:
            # It disconnected meanwhile: nothing to keep.
            await self._release(channel, entry)
            return None
        delivered, entry.position = entry.position, entry.position or history.position
        recovered = since is not None and history.recovers(since)
        outcome = Subscribed(history.position, recovered if since is not None else None)
        if answer is not None:
            self.send_to(client, answer(outcome))
        last = since if since is not None and recovered else history.position
        if recovered:
            for _, text in history.messages:
                client.offer({"type": "websocket.send", "text": text})
            if history.messages:
                last = Position(history.messages[-1][0], history.position.epoch)
        for frame, position in held:
            if _after(position, last):
                client.offer(frame)
                last = position or last
        if delivered is None or _after(last, delivered):
            # The read went past what this process has been delivered: the rest
            # is still on its way (Redis's reply to the read can overtake its
            # pub/sub messages on the other connection), or will come again
            # when the channel is caught up after an interruption.
            entry.ahead[client] = last
        entry.members.add(client)
        client.channels.add(channel)
        return outcome

    async def _wait_live(self, entry: _Channel) -> None:
        """Wait for a channel being caught up after an outage; BroadcastUnavailable
        at once while the backend is still down, or after RECOVERY_WAIT seconds."""
        reason = self._backend.ready()
        if reason is not None:
            raise BroadcastUnavailable(reason)
        try:
            async with asyncio.timeout(RECOVERY_WAIT):
                await entry.live.wait()
        except TimeoutError:
            raise BroadcastUnavailable("the channel is still being recovered") from None

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
        entry.ahead.pop(client, None)
        await self._release(channel, entry)

    async def _release(self, channel: str, entry: _Channel) -> None:
        """Unsubscribe the backend from `channel` if no local client wants it any more."""
        # Not while another is joining: it is past the backend's subscribe, reading history.
        if not entry.members and not entry.joining:
            async with entry.lock:
                if not entry.members and not entry.joining and entry.subscribed:
                    entry.subscribed = False
                    try:
                        await self._backend.unsubscribe(channel)
                    except Exception:
                        logger.warning(
                            "unsubscribing channel %r failed",
                            channel,
                            exc_info=True,
                            extra={"channel": channel},
                        )
            self._forget_if_unused(channel, entry)

    async def publish(
        self, channel: str, data_json: str, sender: str, *, via: Via = "job"
    ) -> Position:
        """Publish `data_json` (valid JSON text) to `channel` in every process; its position.

        Needs no subscriber. `sender` names who publishes (envelope.SENDER: a
        client id, "http", a job's name); other processes drop envelopes whose
        sender is not of that form, so another raises ValueError here. `via`
        says how, for the metrics. Raises BroadcastUnavailable at once when
        the backend cannot publish.
        """
        if not SENDER.fullmatch(sender):
            raise ValueError(f"a sender is letters, digits, '_', '.', ':', '-' (got {sender!r})")
        if self._state != "running":  # the start lock only until started
            await self.start()
        position = await self._backend.publish(
            channel, draft(channel, self.origin, sender, data_json)
        )
        if self.metrics is not None:
            self.metrics.published(via)
        return position

    async def history(self, channel: str, since: int | None, limit: int | None) -> History:
        """The channel's position and up to `limit` kept messages after offset `since`.

        Raises BroadcastUnavailable when the backend cannot read.
        """
        if self._state != "running":
            await self.start()
        return await self._backend.history(channel, since, limit)

    async def announce(self, channel: str, data: Any, sender: str) -> bool:
        """Publish `data` as JSON, best effort: an outage is logged and returns False."""
        try:
            await self.publish(channel, json_text(data), sender)
        except BroadcastUnavailable as exc:
            logger.warning(
                "could not announce on channel %r: %s", channel, exc, extra={"channel": channel}
            )
            return False
        return True

    def deliver(self, channel: str, message: str, position: Position) -> None:
        """Fan one serialised envelope out to the channel's subscribers; never blocks.

        The frame goes out at the end of this event-loop step, with any others
        delivered in it (see the module's docstring).
        """
        entry = self._channels.get(channel)
        if entry is None:
            return
        frame: _Frame = ({"type": "websocket.send", "text": message}, position)
        if entry.held is not None:
            if len(entry.held) < HELD_LIMIT:
                entry.held.append(frame)
            else:
                entry.overflowed = True
            return
        last = entry.position
        if last is not None and position != (last.offset + 1, last.epoch):
            if position.epoch == last.epoch and position.offset <= last.offset:
                return  # delivered already (or older): never twice, never backwards
            # A gap, or another epoch, on a live subscription: the history says
            # what comes next, not this frame (a message lost on the way, or one
            # that is not what it claims to be).
            self._catch_up_channel(channel, entry, frame)
            return
        entry.position = position
        self._queue(channel, frame)

    def _catch_up_channel(self, channel: str, entry: _Channel, frame: _Frame) -> None:
        """Hold `channel`, starting with `frame`, and catch it up from its history."""
        logger.info(
            "broadcast: channel %r jumped from offset %s to %s; catching up from its history",
            channel,
            entry.position,
            frame[1],
        )
        entry.held = [frame]
        entry.gap = True
        entry.live.clear()
        self._start_recovery()

    def send_to(self, client: Client, text: str) -> None:
        """Send a frame to `client` alone (a reply, an error), after what its
        channels were delivered before it; never blocks."""
        for channel in client.channels:
            if channel in self._pending:
                self._flush_channel(channel)
        client.offer({"type": "websocket.send", "text": text})

    def interrupted(self) -> None:
        """The backend lost its subscriptions: hold every channel's deliveries until resumed."""
        self._interruptions += 1
        self._connected = False
        for entry in self._channels.values():
            entry.gap = False  # not a gap on a live subscription any more: messages may be lost
            if entry.held is None:
                entry.held = []
                entry.live.clear()

    def resumed(self) -> None:
        """The backend is back: catch every held channel up from its history, in a task."""
        self._connected = True
        if self.metrics is not None:
            self.metrics.resumed()
        self._start_recovery()

    def _start_recovery(self) -> None:
        self._resume_again = True  # a catching up under way makes another pass
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.get_running_loop().create_task(
                self._recover(), name="broadcast recovery"
            )

    async def _recover(self) -> None:
        """Catch up until no channel is held, or the backend is interrupted again
        (its next `resumed` starts over); reads that failed are tried again with backoff."""
        delay = RECOVERY_RETRY_DELAY
        while self._connected:
            self._resume_again = False
            if not await self._catch_up() or not self._connected:
                return
            if not self._resume_again:
                # Reads failed with the backend connected (Redis slow, or a pooled
                # connection found dead): no `resumed` is coming to try again.
                await asyncio.sleep(delay)
                delay = min(2 * delay, RECOVERY_RETRY_MAX_DELAY)

    async def _catch_up(self) -> int:
        """Recover each held channel after its last delivered offset, else send `resync`;
        how many channels are still held."""
        limit = asyncio.Semaphore(RECOVERY_CONCURRENCY)
        recovered = resynced = 0

        async def catch_up(channel: str, entry: _Channel) -> None:
            nonlocal recovered, resynced
            async with limit:
                since = entry.position
                interruptions = self._interruptions
                held = entry.held or []
                before_read = len(held)
                after = since.offset if since else None
                first = held[0][1] if held else None
                if (
                    entry.gap
                    and since is not None
                    and first is not None
                    and first.epoch != since.epoch
                ):
                    after = 0  # a new epoch: its history from the start
                try:
                    history = await self._backend.history(channel, after)
                except BroadcastUnavailable:
                    return  # still held: tried again
                if self._channels.get(channel) is not entry or entry.held is None:
                    return
                if not self._connected or self._interruptions != interruptions:
                    # Lost again during the read: what is published until the
                    # next `resumed` would be missed. Still held.
                    return
                if self._release_held(channel, entry, since, history, before_read):
                    recovered += 1
                else:
                    resynced += 1

        held = [(name, entry) for name, entry in self._channels.items() if entry.held is not None]
        await asyncio.gather(*(catch_up(name, entry) for name, entry in held))
        if self.metrics is not None:
            self.metrics.caught_up(recovered, resynced)
        if recovered or resynced:
            logger.info(
                "broadcast resumed: %d channel(s) recovered from history, %d told to resync",
                recovered,
                resynced,
            )
        return sum(entry.held is not None for entry in self._channels.values())

    def _release_held(
        self,
        channel: str,
        entry: _Channel,
        since: Position | None,
        history: History,
        before_read: int,
    ) -> bool:
        """Deliver what `channel` missed after `since`, then what it held; False if it
        could not recover (its subscribers are sent `resync`).

        The first `before_read` held frames arrived before `history` was read,
        so a message of the channel among them is in it: one that lies past
        its position, or in another epoch, is not the service's and is dropped.
        """
        held, entry.held = entry.held or [], None
        gap, entry.gap = entry.gap, False
        for index in range(min(before_read, len(held)) - 1, -1, -1):
            position = held[index][1]
            if position is not None and _after(position, history.position):
                logger.warning(
                    "broadcast: dropped a message on channel %r at %s: the channel's history"
                    " ends at %s, so it is not one of this service's",
                    channel,
                    position,
                    history.position,
                )
                del held[index]
        if gap and since is not None and history.position.epoch != since.epoch:
            # The subscription stayed live through the old epoch's end (its
            # history expired, or was flushed): nothing of it was missed, and
            # the new epoch is delivered from its start if all of it is kept.
            since = Position(0, history.position.epoch)
        if since is not None and since.epoch == history.position.epoch:
            # Read from further back than `since` (a gap that looked like a new epoch).
            after = [message for message in history.messages if message[0] > since.offset]
            history = History(history.position, after)
        recovered = since is not None and not entry.overflowed and history.recovers(since)
        entry.overflowed = False
        if recovered and since is not None:
            last = since
            for offset, text in history.messages:
                last = Position(offset, history.position.epoch)
                self._queue(channel, ({"type": "websocket.send", "text": text}, last))
        else:
            last = history.position
            reason = "messages may have been missed; reload the channel's state"
            text = resync_frame(channel, history.position, self.origin, reason)
            self._queue(channel, ({"type": "websocket.send", "text": text}, None))
        entry.position = last
        for frame in held:
            if _after(frame[1], last):
                entry.position = frame[1]
                self._queue(channel, frame)
        entry.live.set()
        return recovered

    def _queue(self, channel: str, frame: _Frame) -> None:
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
        if not frames or entry is None:
            return
        if entry.recovering:  # subscribers being caught up: theirs to sort out
            for waiting in entry.recovering.values():
                waiting.extend(frames)
        if not entry.members:
            return
        members: Collection[Client] = entry.members
        offered = 0
        if entry.ahead:
            members = [client for client in members if client not in entry.ahead]
            offered = self._offer_ahead(entry, frames)
        if self.metrics is not None:  # once per fan-out, not per frame
            offered += len(frames) * len(members)
            self.metrics.fanned_out(offered, frames[0][0]["text"])
        # Framed once here rather than by the server for every client.
        framed = [text_frame(frame["text"]) for frame, _ in frames]
        # offer() never awaits and never changes membership, so the set
        # cannot change under this loop.
        if len(frames) == 1:  # the common case, paced publishing: no pairing per client
            frame, ready = frames[0][0], framed[0]
            for client in members:
                client.offer(frame, ready)
            return
        pairs = [(frame, ready) for (frame, _), ready in zip(frames, framed, strict=True)]
        for client in members:
            for frame, ready in pairs:
                client.offer(frame, ready)

    def _offer_ahead(self, entry: _Channel, frames: list[_Frame]) -> int:
        """Offer members that are ahead only the frames after what they have; a member
        sent a frame after it is ahead no more. How many frames it offered."""
        offered = 0
        for client, last in list(entry.ahead.items()):
            caught_up = False
            for frame, position in frames:
                if caught_up or _after(position, last):
                    client.offer(frame)
                    offered += 1
                    caught_up = caught_up or position is not None  # the rest follow in order
            if caught_up:
                del entry.ahead[client]
        return offered

    def stats(self) -> HubStats:
        return HubStats(
            clients=len(self._clients),
            channels={name: len(e.members) for name, e in self._channels.items() if e.members},
            backlog=sum(c.backlog for c in self._clients),
            pushing_back=sum(c.pushing_back for c in self._clients),
        )

    def backend_ready(self) -> bool:
        """Whether the hub runs and its backend can publish and subscribe now; never blocks."""
        return self._state == "running" and self._backend.ready() is None

    def _forget_if_unused(self, channel: str, entry: _Channel) -> None:
        unused = not entry.members and not entry.joining and not entry.subscribed
        if unused and self._channels.get(channel) is entry:
            del self._channels[channel]


def _after(position: Position | None, last: Position) -> bool:
    """Whether a frame at `position` comes after `last` (a frame with no position,
    or of another epoch, always does: it was delivered later)."""
    return position is None or position.epoch != last.epoch or position.offset > last.offset
