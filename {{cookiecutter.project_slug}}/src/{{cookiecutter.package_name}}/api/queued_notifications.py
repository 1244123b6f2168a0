"""POST /notifications: store a notification job in the queue, answer 202 with its id.

A worker process sends it (tasks/notifications.py); `GET /jobs/{id}` follows
it from any web process. `create_app` includes this router only when
REDIS_URL is set (the queue lives there).
"""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from ..auth.bearer import IdentityDep
from ..deps import QueueDep, SettingsDep
from ..errors import BODY_TOO_LARGE, UNAUTHENTICATED, error
from ..tasks.queue import enqueue

logger = logging.getLogger(__name__)

router = APIRouter(tags=["notifications"])


class Notification(BaseModel):
    recipient: str = Field(min_length=1, max_length=320)
    message: str = Field(min_length=1, max_length=4000)


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    job_id: str


@router.post(
    "/notifications",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **UNAUTHENTICATED,
        **BODY_TOO_LARGE,
        **error(503, "Redis did not take the job within REDIS_TIMEOUT; nothing was queued"),
    },
)
async def send_notification(
    notification: Notification, identity: IdentityDep, queue: QueueDep, settings: SettingsDep
) -> Accepted:
    """Queue a notification; a worker sends it. 202 once the job is stored in Redis.

    Needs a valid bearer token unless authentication is off; the job is its
    `sub`'s to look up at `GET /jobs/{job_id}`.
    """
    try:
        job_id = await enqueue(
            queue,
            settings,
            "send_notification",
            owner=identity.user,
            recipient=notification.recipient,
            message=notification.message,
        )
    except RedisError as exc:
        logger.warning("could not queue a notification: %s", exc)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "the job queue is unavailable; nothing was queued"
        ) from exc
    return Accepted(job_id=job_id)
