"""Offsets, epochs and history in Redis: two Lua scripts, each one atomic step.

Per channel `c`, under the service's REDIS_PREFIX `p`:

- `p:position:{c}`, a hash: `epoch` and `offset`, the channel's latest offset;
- `p:history:{c}`, a stream capped at HISTORY_SIZE entries: the envelope of
  offset `n` is the entry `n-0`, field `m`;
- `p:broadcast:c`, the pub/sub channel every process subscribes to.

`{c}` is a hash tag: both keys of one channel live in one Redis Cluster slot,
so the scripts stay valid there without any change to this data model.
Both keys expire HISTORY_TTL after the channel's last publish. When the
position hash is missing (never published, expired, evicted, flushed, or a
Redis restarted without persistence), the next script to touch the channel
starts a new epoch at offset 0 and empties the stream: offsets are only
compared within an epoch.

`publish` takes the offset, completes the envelope, stores and PUBLISHes it
in one script, so two processes publishing to one channel can never give two
messages one offset, nor deliver them out of offset order.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from .envelope import Draft, NotOurs, Position, new_epoch, read_envelope
from .history import History

# KEYS: position, stream. ARGV: pub/sub channel, envelope before and after its
# position, history size, ttl (ms), an epoch to start if the channel has none.
_PUBLISH = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[6]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
end
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
local number = string.format('%d', offset)
local message = ARGV[2] .. number .. ',"epoch":"' .. epoch .. '"' .. ARGV[3]
if tonumber(ARGV[4]) > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], number .. '-0', 'm', message)
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PUBLISH', ARGV[1], message)
return {offset, epoch}
"""

# KEYS: position, stream. ARGV: an epoch to start if the channel has none, ttl
# (ms), the offset to read after (-1: read nothing), the most entries to return.
_READ = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
local offset = 0
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  offset = tonumber(redis.call('HGET', KEYS[1], 'offset'))
end
local since = tonumber(ARGV[3])
local entries = {}
if since >= 0 and since < offset then
  local first = string.format('%d', since + 1) .. '-0'
  entries = redis.call('XRANGE', KEYS[2], first, '+', 'COUNT', ARGV[4])
end
return {offset, epoch, entries}
"""


class RedisHistory:
    """The two scripts, bound to `client` (replies decoded to str) and the key names."""

    def __init__(
        self, client: Redis, prefix: str, *, size: int, ttl: float, max_data_bytes: int
    ) -> None:
        if size < 0 or ttl <= 0:
            raise ValueError("size must be >= 0 and ttl > 0")
        self._prefix = prefix
        self._size = size
        self._ttl_ms = max(1, round(ttl * 1000))
        self._max_data_bytes = max_data_bytes
        # EVALSHA, falling back to EVAL when Redis has not the script (a restart).
        self._publish = client.register_script(_PUBLISH)
        self._read = client.register_script(_READ)

    def channel(self, channel: str) -> str:
        """The pub/sub channel that carries `channel`."""
        return f"{self._prefix}:broadcast:{channel}"

    def _keys(self, channel: str) -> list[str]:
        tag = "{" + channel + "}"  # the hash tag: one slot for both keys
        return [f"{self._prefix}:position:{tag}", f"{self._prefix}:history:{tag}"]

    async def publish(self, channel: str, message: Draft) -> Position:
        """Number, keep and publish `message`; its position. Raises what redis-py raises."""
        args: list[str | int] = [
            self.channel(channel),
            message.before,
            message.after,
            self._size,
            self._ttl_ms,
            new_epoch(),
        ]
        offset, epoch = await self._publish(keys=self._keys(channel), args=args)
        return Position(int(offset), _text(epoch))

    async def read(self, channel: str, since: int | None, limit: int | None) -> History:
        """The channel's position, and up to `limit` kept envelopes after offset `since`.

        The list starts at the oldest kept entry after `since` (older ones may
        have gone: `History.recovers` tells); an entry that is not an envelope
        of this channel at its place ends the list there, since what follows
        would not be contiguous.
        """
        count = limit if limit is not None else self._size
        after = -1 if since is None or count <= 0 else since
        args: list[str | int] = [new_epoch(), self._ttl_ms, after, count]
        offset, epoch, entries = await self._read(keys=self._keys(channel), args=args)
        position = Position(int(offset), _text(epoch))
        messages: list[tuple[int, str]] = []
        for entry_id, fields in entries:
            text = _text(dict(zip(fields[::2], fields[1::2], strict=True)).get("m", ""))
            try:
                offset_read, epoch_read = read_envelope(channel, text, self._max_data_bytes)
            except NotOurs:
                break
            expected = messages[-1][0] + 1 if messages else max(offset_read, after + 1)
            if (offset_read, epoch_read) != (expected, position.epoch):
                break
            if _text(entry_id) != f"{expected}-0":
                break
            messages.append((expected, text))
        return History(position, messages)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
