"""POST /counters/{name}: a counter in Redis, shared by every process; an example of `RedisDep`.

`create_app` includes this router only when REDIS_URL is set: a route that
needs Redis is not offered, in the schema or at all, by a service without it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import BaseModel
from redis.exceptions import RedisError

from ..deps import RedisDep, SettingsDep
from ..errors import error

router = APIRouter(tags=["counters"])


Name = Annotated[
    str,
    Path(
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$",
        description="Letters, digits, '_', '-', '.', ':'; starts alphanumeric.",
    ),
]


class Counter(BaseModel):
    name: str
    value: int


@router.post(
    "/counters/{name}",
    responses=error(503, "Redis did not answer within REDIS_TIMEOUT"),
)
async def increment_counter(name: Name, redis: RedisDep, settings: SettingsDep) -> Counter:
    """Add one to the counter `name` (created at 0) and return its new value; 503 if Redis fails.

    The counter is the Redis key `<REDIS_PREFIX>:counters:<name>`.
    """
    try:
        value = await redis.incr(settings.redis_key("counters", name))
    except RedisError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"Redis unavailable: {type(exc).__name__}: {exc}"
        ) from exc
    return Counter(name=name, value=value)
