"""A job's state changes, published to its WebSocket channel `jobs:<id>` from any process.

The worker has no WebSocket clients of its own: it publishes through Redis
exactly as a web process's hub does (the same script, so the messages get
offsets and history), and every web process delivers them to its
subscribers. A page that subscribes to `jobs:<id>` watches the job finish.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..broadcast.envelope import draft, json_text
from ..broadcast.redis_history import RedisHistory
from ..settings import Settings
from .queue import JobState

logger = logging.getLogger(__name__)

# Who published, in the envelope's `sender`.
SENDER = "jobs"


def job_channel(job_id: str) -> str:
    """The channel that carries job `job_id`'s state changes."""
    return f"jobs:{job_id}"


class JobProgress:
    """Publishes `{"event": "job.<state>", "job_id": ..., ...}` to `jobs:<id>`.

    `client` is a Redis client whose replies are decoded to `str`
    (redis_client.create_redis); it is not closed here.
    """

    def __init__(self, client: Redis, settings: Settings) -> None:
        self._history = RedisHistory(
            client,
            settings.redis_key(),
            size=settings.history_size,
            ttl=settings.history_ttl,
            max_data_bytes=settings.ws_max_message_size,
        )
        # Like a hub's: which process published (envelope's `origin`).
        self._origin = uuid.uuid4().hex[:12]
        # Counted in this process: on GET /metrics when it shares the web
        # service's PROMETHEUS_MULTIPROC_DIR (README "Metrics").
        self._published = _job_publishes() if settings.metrics_enabled else None

    async def publish(self, job_id: str, state: JobState | str, **fields: Any) -> bool:
        """Best effort: a Redis error is logged and returns False; the job goes on."""
        channel = job_channel(job_id)
        data = json_text({"event": f"job.{state}", "job_id": job_id, **fields})
        try:
            await self._history.publish(channel, draft(channel, self._origin, SENDER, data))
        except (RedisError, OSError) as exc:
            logger.warning("could not publish job %s's state %s: %s", job_id, state, exc)
            return False
        if self._published is not None:
            self._published.inc()
        return True


def _job_publishes() -> Counter:
    """The count of messages published by jobs (metrics/broadcast.py)."""
    # Imported here, when the worker counts: importing defines the metrics,
    # which in multiprocess mode opens files in PROMETHEUS_MULTIPROC_DIR, and
    # `python -m` imports this module before it checks that directory.
    from ..metrics.broadcast import MESSAGES_PUBLISHED

    return MESSAGES_PUBLISHED.labels("job")
