"""Which backend the hub runs on: Redis when `REDIS_URL` is set, else this process's memory.

A runtime choice, so the same build serves a laptop without Redis and a
fleet of workers sharing one.
"""

from __future__ import annotations

import logging

from ..settings import Settings
from .backend import Backend
from .memory import memory_backend
from .redis import RedisBackend

logger = logging.getLogger(__name__)


def broadcast_backend(settings: Settings) -> Backend:
    """The backend `settings` ask for, not started yet; logs which it is.

    Connects to nothing: the hub starts the backend, and a Redis that is
    down then only makes `/ready` fail until it comes up.
    """
    if settings.redis_url is None:
        logger.info("REDIS_URL is not set: broadcasting in memory, to this process's clients only")
        return memory_backend(settings)
    backend = RedisBackend(
        settings.redis_url,
        prefix=settings.redis_key(),
        history_size=settings.history_size,
        history_ttl=settings.history_ttl,
        max_data_bytes=settings.ws_max_message_size,
        timeout=settings.redis_timeout,
        reconnect_max_delay=settings.redis_reconnect_max_delay,
        health_check_interval=settings.redis_health_check_interval,
    )
    logger.info(
        "broadcasting through Redis at %s, to the clients of every process using it"
        " (Redis channels %s*)",
        backend.address,
        backend.redis_channel(""),
    )
    return backend
