"""GET /jobs/{job_id}: a job's state, read from the queue in Redis.

Every web process answers the same, before and after restarts, for
JOB_RESULT_TTL seconds after the job finished. `create_app` includes this
router only when REDIS_URL is set (the queue lives there).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from redis.exceptions import RedisError

from ..auth.bearer import IdentityDep
from ..deps import QueueDep
from ..errors import UNAUTHENTICATED, error
from ..limits import echoed
from ..tasks.queue import JobView, find

router = APIRouter(tags=["jobs"])


@router.get(
    "/jobs/{job_id}",
    responses={
        **UNAUTHENTICATED,
        **error(404, "No such job: unknown, expired (JOB_RESULT_TTL) or another user's"),
        **error(503, "Redis did not answer within REDIS_TIMEOUT"),
    },
)
async def job_status(job_id: str, identity: IdentityDep, queue: QueueDep) -> JobView:
    """The job's state (queued, running, succeeded, failed), its attempts, and its result or error.

    Needs a valid bearer token unless authentication is off; a job is its
    enqueuer's (`sub`) to look up.
    """
    try:
        job = await find(queue, job_id, owner=identity.user)
    except RedisError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "the job queue is unavailable"
        ) from exc
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no job {echoed(job_id)!r}")
    return job
