"""Redis pub/sub as the broadcast backend, so every worker and host sees every message.

One subscriber connection per process reads every channel in use and hands
messages to the receiver (the hub) in arrival order; a separate pool of
short-timeout connections publishes, through the scripts of
redis_history.py that number and keep every message. One listener task owns
the subscriber connection and is supervised: when Redis goes away it logs
the loss, calls `receiver.interrupted()`, reconnects with capped exponential
backoff and jitter, resubscribes every channel still in use and then calls
`receiver.resumed()`, and the hub recovers what was missed from the history.

A connection can also die silently (a half-open TCP path: no error, no
data). While the subscriber hears nothing for `health_check_interval`
seconds it sends a PING; no answer within `timeout` seconds counts as a lost
connection. So a dead path is noticed within `health_check_interval +
timeout` seconds (REDIS_HEALTH_CHECK_INTERVAL + REDIS_TIMEOUT).

Every key and channel name carries `prefix` (the settings' REDIS_PREFIX):
Redis database numbers do not scope pub/sub, so without it two deployments
sharing one Redis would hear each other. Whatever arrives is checked before
the hub sees it (`envelope.read_envelope`): anyone who can PUBLISH on that
Redis could otherwise send clients text that is not ours, a fake `resync`,
or a message larger than their welcome frame promises. What fails the check
is dropped and logged, at most one line per DROP_LOG_INTERVAL seconds.

Subscribe and unsubscribe wait for Redis's confirmation. Redis confirms the
commands of one connection in the order they were sent, so each waiter joins
a queue per (command, channel) and each confirmation settles the oldest one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from typing import Any, Literal

from redis.asyncio import Redis
from redis.asyncio.connection import (
    AbstractConnection,
    BlockingConnectionPool,
    Connection,
    parse_url,
)
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from .backend import BroadcastUnavailable, Receiver
from .envelope import Draft, NotOurs, Position, read_envelope
from .history import History
from .redis_history import RedisHistory

logger = logging.getLogger(__name__)

# What talking to Redis can raise: redis-py's errors and socket errors
# (TimeoutError, from our own deadlines, is an OSError).
_REDIS_ERRORS = (RedisError, OSError)

Command = Literal["subscribe", "unsubscribe"]

# Connections that publish and read history, at most; more commands at once wait.
POOL_SIZE = 50

# Seconds between two log lines about dropped messages: a flood of bad
# publishes must not become a flood of log lines.
DROP_LOG_INTERVAL = 10.0


class RedisBackend:
    """Publish/subscribe through the Redis server at `url` (redis://, rediss:// or unix://).

    Key and channel names start with `prefix` (redis_history.py). Each
    channel keeps its last `history_size` messages (0: none, offsets only)
    until `history_ttl` seconds after its last publish. A received message
    reaches the receiver only if it is an envelope for its channel whose
    data is at most `max_data_bytes` bytes. `timeout` bounds connecting,
    each publish, read and wait for a confirmation, and the wait for a PONG.
    After losing Redis, the listener retries after `reconnect_initial_delay`
    seconds, doubling up to `reconnect_max_delay`.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        history_size: int = 100,
        history_ttl: float = 300.0,
        max_data_bytes: int = 64 * 1024,
        timeout: float = 2.0,
        reconnect_initial_delay: float = 0.1,
        reconnect_max_delay: float = 5.0,
        health_check_interval: float = 5.0,
    ) -> None:
        if timeout <= 0 or reconnect_initial_delay <= 0:
            raise ValueError("timeout and reconnect_initial_delay must be positive")
        if reconnect_max_delay < reconnect_initial_delay:
            raise ValueError("reconnect_max_delay must be at least reconnect_initial_delay")
        if health_check_interval <= 0:
            raise ValueError("health_check_interval must be positive")
        self._max_data_bytes = max_data_bytes
        self._health_check_interval = health_check_interval
        self._timeout = timeout
        self._initial_delay = reconnect_initial_delay
        self._max_delay = reconnect_max_delay

        options: dict[str, Any] = {**parse_url(url)}
        self._connection_class: type[AbstractConnection] = options.pop(
            "connection_class", Connection
        )
        # Where we connect, for logs and reasons; never the password.
        self._address: str = options.get("path") or (
            f"{options.get('host', 'localhost')}:{options.get('port', 6379)}"
        )
        # Applied after the URL's own query options, so a URL cannot undo them.
        self._subscriber_options: dict[str, Any] = {
            **options,
            # A subscriber waits as long as nobody publishes. redis-py 8's
            # default 5 s socket timeout would end every idle read with an error.
            "socket_timeout": None,
            "socket_connect_timeout": timeout,
            # In RESP2, everything a subscribed connection receives is an
            # array [kind, channel, payload]: one shape to read.
            "protocol": 2,
            "decode_responses": True,
            "encoding_errors": "replace",
            # No hidden retries: the listener reconnects and resubscribes itself.
            "retry": Retry(NoBackoff(), 0),
        }
        # Publishing fails fast when Redis is down: a short timeout, and one
        # immediate retry on a connection error only, for a pooled connection
        # that Redis (a restart, an idle timeout) closed while it sat unused.
        # A blocking pool: a burst of commands (a thousand clients subscribing
        # with `since` after a restart) waits up to `timeout` for a connection,
        # where the default pool fails every command past its 100th at once
        # (MaxConnectionsError). Redis runs one command at a time anyway.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=POOL_SIZE,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            decode_responses=True,
            encoding_errors="replace",
        )
        self._publisher: Redis = Redis.from_pool(pool)
        self._history = RedisHistory(
            self._publisher,
            prefix,
            size=history_size,
            ttl=history_ttl,
            max_data_bytes=max_data_bytes,
        )

        self._receiver: Receiver | None = None
        self._listener: asyncio.Task[None] | None = None
        self._first_attempt = asyncio.Event()
        self._stopped = False
        # Set while the listener holds a live subscriber connection.
        self._connection: AbstractConnection | None = None
        self._down_reason = "not started"
        self._wanted: set[str] = set()  # channels in use, the hub's view
        self._confirmed: set[str] = set()  # channels Redis confirmed on this connection
        self._waiters: dict[tuple[Command, str], deque[asyncio.Future[bool]]] = {}
        self._failures = 0  # connection attempts failed since the last live connection
        self._ever_live = False
        self._dropped = 0  # messages dropped since the last line that said so
        self._drop_logged_at = -DROP_LOG_INTERVAL

    @property
    def address(self) -> str:
        """Where it connects (host:port, or a socket's path), for logs: never the password."""
        return self._address

    async def start(self, receiver: Receiver) -> None:
        """Start the listener; returns after its first connection attempt, successful or not.

        Redis being down at startup is not fatal: the listener keeps trying
        and `ready()` says why it is not ready.
        """
        if self._listener is not None or self._stopped:
            raise RuntimeError("RedisBackend can be started once")
        self._receiver = receiver
        self._listener = asyncio.create_task(self._listen(), name="redis broadcast listener")
        try:
            await self._first_attempt.wait()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """End the listener and close both connections; safe to call more than once."""
        self._stopped = True
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            # asyncio.wait, not `await listener`: our own cancellation must still propagate.
            await asyncio.wait({listener})
        await self._publisher.aclose()
        self._down_reason = "stopped"

    def redis_channel(self, channel: str) -> str:
        """The Redis pub/sub channel that carries `channel`."""
        return self._history.channel(channel)

    async def publish(self, channel: str, message: Draft) -> Position:
        """Number, keep and send `message` to every subscriber of `channel`; its position.

        Raises BroadcastUnavailable at once when the listener knows Redis is
        down, else within `timeout`.
        """
        if self._connection is None:
            raise BroadcastUnavailable(self._down_reason)
        try:
            return await self._history.publish(channel, message)
        except _REDIS_ERRORS as exc:
            reason = f"publish to Redis at {self._address} failed: {_describe(exc)}"
            raise BroadcastUnavailable(reason) from exc

    async def history(self, channel: str, since: int | None, limit: int | None = None) -> History:
        """The channel's position and up to `limit` kept messages after offset `since`.

        Raises BroadcastUnavailable when Redis is down or does not answer within `timeout`.
        """
        try:
            return await self._history.read(channel, since, limit)
        except _REDIS_ERRORS as exc:
            reason = f"reading history from Redis at {self._address} failed: {_describe(exc)}"
            raise BroadcastUnavailable(reason) from exc

    async def subscribe(self, channel: str) -> None:
        """Start receiving `channel`; returns once Redis confirmed the subscription.

        Raises BroadcastUnavailable (and keeps nothing) when Redis is down or
        does not confirm within `timeout`.
        """
        connection = self._connection
        if connection is None:
            raise BroadcastUnavailable(self._down_reason)
        self._wanted.add(channel)
        confirmation = self._expect("subscribe", channel)
        try:
            await connection.send_command("SUBSCRIBE", self.redis_channel(channel))
            async with asyncio.timeout(self._timeout):
                confirmed = await confirmation
        except _REDIS_ERRORS as exc:
            self._wanted.discard(channel)
            reason = f"subscribe to {channel!r} failed: {_describe(exc)}"
            raise BroadcastUnavailable(reason) from exc
        except BaseException:
            self._wanted.discard(channel)
            raise
        if not confirmed:
            self._wanted.discard(channel)
            raise BroadcastUnavailable(f"lost Redis before it confirmed {channel!r}")

    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving `channel`; returns once Redis confirmed, or at once while disconnected.

        Never raises for Redis being down: the subscription ended with the
        connection, and the listener will not resubscribe this channel.
        """
        self._wanted.discard(channel)
        connection = self._connection
        if connection is None:
            return
        confirmation = self._expect("unsubscribe", channel)
        try:
            await connection.send_command("UNSUBSCRIBE", self.redis_channel(channel))
            async with asyncio.timeout(self._timeout):
                await confirmation
        except _REDIS_ERRORS as exc:
            logger.debug("redis broadcast: unconfirmed unsubscribe %r: %s", channel, _describe(exc))

    def ready(self) -> str | None:
        """None when the subscriber connection is live and every channel in use is confirmed.

        A live connection alone is not enough: until the resubscription is
        confirmed, messages published on those channels would be missed.
        """
        if self._connection is None:
            return self._down_reason
        missing = len(self._wanted - self._confirmed)
        if missing:
            return f"{missing} channel(s) not yet subscribed in Redis"
        return None

    # The listener.

    async def _listen(self) -> None:
        """Own the subscriber connection until stopped: connect, read, and on failure retry."""
        while True:
            connection = self._connection_class(**self._subscriber_options)
            reason = "stopped"
            try:
                async with asyncio.timeout(self._timeout):
                    await connection.connect()  # type: ignore[no-untyped-call]  # unannotated upstream
                await self._serve(connection)
            except _REDIS_ERRORS as exc:
                reason = f"no connection to Redis at {self._address}: {_describe(exc)}"
            except Exception:  # the supervisor's boundary: a bug must not end the listener
                logger.exception("redis broadcast: listener failed; reconnecting")
                reason = "listener failed unexpectedly (see the logs)"
            finally:
                was_live = self._connection is not None
                self._went_down(reason)
                with contextlib.suppress(*_REDIS_ERRORS):  # a broken connection closes anyway
                    await connection.disconnect()
            self._failures += 1
            if was_live:
                logger.warning("redis broadcast: lost Redis (%s); reconnecting", reason)
            elif self._failures == 1:
                logger.warning("redis broadcast: %s; retrying with backoff", reason)
            else:  # one warning per outage, not one per attempt
                logger.debug("redis broadcast: attempt %d failed: %s", self._failures, reason)
            await asyncio.sleep(self._backoff())

    async def _serve(self, connection: AbstractConnection) -> None:
        """Resubscribe the channels in use, then hand over messages until the connection fails."""
        self._connection = connection
        channels = sorted(self._wanted)
        # The resubscription waits in line like any subscribe() call; Redis
        # confirms its channels in order, so done waiters leave from the left.
        resubscribing = deque(self._expect("subscribe", channel) for channel in channels)
        if channels:
            await connection.send_command("SUBSCRIBE", *map(self.redis_channel, channels))
        else:
            self._went_live(0)
        # Every channel this connection subscribes to carries the same start.
        start = len(self.redis_channel(""))
        pinged = False
        while True:
            wait = self._timeout if pinged else self._health_check_interval
            response = await connection.read_response(timeout=wait)
            if response is None:  # nothing heard for `wait` seconds
                if pinged:
                    raise TimeoutError(f"no answer to PING within {self._timeout:g}s")
                await connection.send_command("PING")
                pinged = True
                continue
            pinged = False  # anything heard shows the connection alive
            if isinstance(response, str):  # PONG, while subscribed to nothing
                continue
            kind, channel = response[0], response[1][start:]
            if kind == "message":
                # Skip what was still in flight when the hub unsubscribed.
                if channel in self._wanted:
                    self._deliver(channel, response[2])
            elif kind == "subscribe":
                self._confirmed.add(channel)
                self._settle("subscribe", channel)
                if channel not in self._wanted:
                    # A subscribe() that gave up (timeout, cancelled) before Redis
                    # confirmed: undo it, or Redis keeps sending what nobody wants.
                    self._expect("unsubscribe", channel)
                    await connection.send_command("UNSUBSCRIBE", self.redis_channel(channel))
                if resubscribing:
                    while resubscribing and resubscribing[0].done():
                        resubscribing.popleft()
                    if not resubscribing:
                        self._went_live(len(channels))
            elif kind == "unsubscribe":
                self._confirmed.discard(channel)
                self._settle("unsubscribe", channel)

    def _went_live(self, resubscribed: int) -> None:
        """The connection is up and every channel in use is subscribed again."""
        self._failures = 0
        self._first_attempt.set()
        if not self._ever_live:
            self._ever_live = True
            logger.info("redis broadcast: listening on Redis at %s", self._address)
            return
        logger.info(
            "redis broadcast: reconnected to Redis at %s; %d channel(s) resubscribed",
            self._address,
            resubscribed,
        )
        # Messages published while we were away are in the history: the receiver recovers them.
        if self._receiver is not None:
            try:
                self._receiver.resumed()
            except Exception:  # a faulty receiver must not cost the connection
                logger.exception("redis broadcast: receiver failed to resume")

    def _went_down(self, reason: str) -> None:
        """Forget the connection's subscriptions and release everyone waiting on it."""
        # Only a live connection's loss interrupts (before the first one there is
        # nothing to miss), and not a stop.
        lost = self._connection is not None and self._ever_live and not self._stopped
        if lost and self._receiver is not None:
            try:
                self._receiver.interrupted()
            except Exception:  # a faulty receiver must not stop the reconnecting
                logger.exception("redis broadcast: receiver failed on the interruption")
        self._connection = None
        self._down_reason = reason
        self._confirmed.clear()
        waiters, self._waiters = self._waiters, {}
        for queue in waiters.values():
            for waiter in queue:
                if not waiter.done():
                    waiter.set_result(False)
        self._first_attempt.set()

    def _deliver(self, channel: str, message: str) -> None:
        if self._receiver is None:
            return
        try:
            position = read_envelope(channel, message, self._max_data_bytes)
        except NotOurs as exc:
            self._drop(channel, str(exc))
            return
        try:
            self._receiver.deliver(channel, message, position)
        except Exception:  # a faulty receiver must not cost every other channel its messages
            logger.exception("redis broadcast: receiver failed on a message for %r", channel)

    def _drop(self, channel: str, problem: str) -> None:
        """Count a message that is not ours; say so at most once per DROP_LOG_INTERVAL."""
        self._dropped += 1
        now = time.monotonic()
        if now - self._drop_logged_at < DROP_LOG_INTERVAL:
            return
        logger.warning(
            "redis broadcast: dropped %d message(s) that are not this service's envelopes"
            " (one line per %g s at most); the latest on channel %r (Redis channel %r): %s",
            self._dropped,
            DROP_LOG_INTERVAL,
            channel,
            self.redis_channel(channel),
            problem,
        )
        self._dropped, self._drop_logged_at = 0, now

    def _expect(self, command: Command, channel: str) -> asyncio.Future[bool]:
        """Join the queue for Redis's next confirmation of `command` on `channel`."""
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault((command, channel), deque()).append(waiter)
        return waiter

    def _settle(self, command: Command, channel: str) -> None:
        """Confirm the oldest waiter in this queue (one that gave up still takes its turn)."""
        queue = self._waiters.get((command, channel))
        if not queue:
            return
        waiter = queue.popleft()
        if not queue:
            del self._waiters[(command, channel)]
        if not waiter.done():
            waiter.set_result(True)

    def _backoff(self) -> float:
        """Seconds before the next attempt: doubling up to the cap, with jitter so that
        workers that lost Redis together do not all come back at the same instant."""
        delay = min(self._max_delay, self._initial_delay * 2 ** min(self._failures - 1, 32))
        return random.uniform(delay / 2, delay)


def _describe(exc: BaseException) -> str:
    # redis-py's exceptions have a terse repr ("network:ConnectionError"); say what happened.
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
