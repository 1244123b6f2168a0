"""POST /notifications: store a notification job in the queue, answer 202 with its id.

A worker process sends it (tasks/notifications.py); `GET /jobs/{id}` follows
it from any web process. `create_app` includes this router only when
REDIS_URL is set (the queue lives there).
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Header, HTTPException, status
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from ..auth.bearer import IdentityDep
from ..deps import QueueDep, SettingsDep
from ..errors import BODY_TOO_LARGE, UNAUTHENTICATED, error
from ..tasks.queue import IdempotencyKeyReused, enqueue

logger = logging.getLogger(__name__)

router = APIRouter(tags=["notifications"])


class Notification(BaseModel):
    recipient: str = Field(min_length=1, max_length=320)
    message: str = Field(min_length=1, max_length=4000)


# An Idempotency-Key header (draft-ietf-httpapi-idempotency-key-header): a
# client's retry with the same key queues the job once.
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[!-~][ -~]*$",
        description="Send the same key again when retrying: the job is queued once",
    ),
]


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    job_id: str


@router.post(
    "/notifications",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **UNAUTHENTICATED,
        **BODY_TOO_LARGE,
        **error(409, "The Idempotency-Key was sent before with another request"),
        **error(
            503,
            "Redis did not confirm the job within REDIS_TIMEOUT: retry with the same"
            " Idempotency-Key, which queues it once",
        ),
    },
)
async def send_notification(
    notification: Notification,
    identity: IdentityDep,
    queue: QueueDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> Accepted:
    """Queue a notification; a worker sends it. 202 once the job is stored in Redis.

    Needs a valid bearer token unless authentication is off; the job is its
    `sub`'s to look up at `GET /jobs/{job_id}`. A request repeated with the
    same Idempotency-Key answers the first one's job id and queues nothing more.
    """
    try:
        job_id = await enqueue(
            queue,
            settings,
            "send_notification",
            owner=identity.user,
            idempotency_key=idempotency_key,
            recipient=notification.recipient,
            message=notification.message,
        )
    except IdempotencyKeyReused as exc:
        # 409, where the draft says 422: the request itself is valid; it conflicts
        # with the one its key named first (and a 422 here would claim it is not).
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except RedisError as exc:
        # A timeout may come after Redis stored the job: only a retry with the
        # same key can tell, so the answer does not claim nothing was queued.
        logger.warning("could not queue a notification: %s", exc)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the job queue did not confirm the job; retry with the same Idempotency-Key"
            " header to have it queued once",
        ) from exc
    return Accepted(job_id=job_id)
