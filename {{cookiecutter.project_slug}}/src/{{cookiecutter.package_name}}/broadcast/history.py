"""A channel's history in this process's memory: the in-memory backend's offsets and epochs.

Each channel published to gets a log: its epoch, its latest offset and a ring
of its last `size` envelopes. A log lives `ttl` seconds after its last
publish; then, or when the logs together pass `max_bytes`, it is dropped,
least recently published first, and the channel's next log starts a new
epoch at offset 1. So memory is bounded however many channels are published
to, and a client that asks for what it missed is told plainly when it is gone.

Redis keeps the same in Redis, for every process (broadcast/redis_history.py).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .envelope import Draft, Position, new_epoch

# What a log costs besides its messages' text, in bytes (its objects, roughly):
# counted, so that millions of channels with no history still hit `max_bytes`.
LOG_OVERHEAD = 256


@dataclass(frozen=True, slots=True)
class History:
    """What a backend keeps of a channel: where it is now, and messages after an offset.

    `messages` are (offset, envelope) pairs in offset order with no gap,
    after the offset asked for; empty when it was not asked or nothing is kept.
    """

    position: Position
    messages: list[tuple[int, str]] = field(default_factory=list)

    def recovers(self, since: Position) -> bool:
        """Whether every message after `since`, up to the position, is here (or there is none)."""
        if since.epoch != self.position.epoch or since.offset > self.position.offset:
            return False
        if since.offset == self.position.offset:
            return True
        # Both ends: a run can stop short too (an entry that failed its check ends it).
        return (
            bool(self.messages)
            and self.messages[0][0] == since.offset + 1
            and self.messages[-1][0] == self.position.offset
        )


@dataclass(slots=True)
class _Log:
    epoch: str
    offset: int = 0
    expires: float = 0.0
    # (offset, envelope, its size in bytes)
    messages: deque[tuple[int, str, int]] = field(default_factory=deque)
    bytes: int = LOG_OVERHEAD


class MemoryHistory:
    """Offsets, epochs and the last `size` messages of each channel, within `max_bytes`.

    `size` 0 keeps offsets and epochs but no message. Bytes are the UTF-8
    size of the kept envelopes plus LOG_OVERHEAD per channel. Past
    `max_bytes`, what goes first: channels read but never published to (a
    subscribe or a history request makes one, so reads of unused names cannot
    push out the history of channels in use), then the least recently
    published channels, then the oldest messages of the one just published
    to. `clock` (seconds) is for tests.
    """

    def __init__(
        self,
        size: int,
        ttl: float,
        max_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if size < 0 or ttl <= 0 or max_bytes <= 0:
            raise ValueError("size must be >= 0, ttl and max_bytes > 0")
        self._size = size
        self._ttl = ttl
        self._max_bytes = max_bytes
        self._clock = clock
        # Least recently published (or made) first: the order logs expire and
        # are evicted in. Logs never published to wait apart, evicted first.
        self._logs: OrderedDict[str, _Log] = OrderedDict()
        self._unpublished: OrderedDict[str, _Log] = OrderedDict()
        self._bytes = 0

    @property
    def bytes(self) -> int:
        """What the logs hold now, in bytes (UTF-8 envelopes, plus overhead)."""
        return self._bytes

    @property
    def channels(self) -> int:
        """Channels with a log now."""
        return len(self._logs) + len(self._unpublished)

    def append(self, channel: str, draft: Draft) -> tuple[Position, str]:
        """Give the next message of `channel` its position; keep it; its position and text."""
        now = self._clock()
        log = self._log(channel, now)
        self._unpublished.pop(channel, None)
        self._logs[channel] = log
        self._logs.move_to_end(channel)
        log.offset += 1
        position = Position(log.offset, log.epoch)
        text = draft.complete(position)
        if self._size:
            size = len(text.encode())
            log.messages.append((log.offset, text, size))
            log.bytes += size
            self._bytes += size
            if len(log.messages) > self._size:
                self._trim(log)
        log.expires = now + self._ttl
        self._evict(now, keep=log)
        return position, text

    def read(self, channel: str, since: int | None, limit: int | None = None) -> History:
        """Where `channel` is now, and up to `limit` kept messages after offset `since`."""
        log = self._log(channel, self._clock())
        position = Position(log.offset, log.epoch)
        if since is None or since >= log.offset:
            return History(position)
        messages = [(offset, text) for offset, text, _ in log.messages if offset > since]
        return History(position, messages[:limit] if limit is not None else messages)

    def _log(self, channel: str, now: float) -> _Log:
        """The channel's live log; a new one (a new epoch) if it had none or it expired."""
        log = self._logs.get(channel) or self._unpublished.get(channel)
        if log is not None and log.expires > now:
            return log
        if log is not None:
            self._drop(channel)
        log = self._unpublished[channel] = _Log(new_epoch(), expires=now + self._ttl)
        self._bytes += log.bytes
        self._evict(now, keep=log)
        return log

    def _evict(self, now: float, keep: _Log) -> None:
        """Drop expired logs; then, while over `max_bytes`, logs never published to, the
        least recently published, and last the oldest messages of `keep`."""
        for logs in (self._unpublished, self._logs):
            while logs:
                oldest, log = next(iter(logs.items()))
                if log is keep or (log.expires > now and self._bytes <= self._max_bytes):
                    break
                self._drop(oldest)
        while self._bytes > self._max_bytes and keep.messages:
            self._trim(keep)

    def _trim(self, log: _Log) -> None:
        """Drop `log`'s oldest message."""
        size = log.messages.popleft()[2]
        log.bytes -= size
        self._bytes -= size

    def _drop(self, channel: str) -> None:
        log = self._logs.pop(channel, None) or self._unpublished.pop(channel)
        self._bytes -= log.bytes
