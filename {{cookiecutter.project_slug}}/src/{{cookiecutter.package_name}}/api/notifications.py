"""Accept a notification, answer 202 at once, deliver it after the response."""

from __future__ import annotations

import inspect
import logging
import uuid
from typing import Literal

import anyio.to_thread
from fastapi import APIRouter, BackgroundTasks, HTTPException, status
from pydantic import BaseModel, Field

from ..auth.bearer import IdentityDep
{% if cookiecutter.use_websockets -%}
from ..deps import HubDep, JobsDep
{% else -%}
from ..deps import JobsDep
{% endif -%}
from ..errors import BODY_TOO_LARGE, UNAUTHENTICATED, error
from ..jobs import JobState
from ..limits import echoed

logger = logging.getLogger(__name__)

router = APIRouter(tags=["notifications"])
{%- if cookiecutter.use_websockets %}

# Watchers of this WebSocket channel see each delivery as it happens.
NOTIFICATIONS_CHANNEL = "notifications"
{%- endif %}


class Notification(BaseModel):
    recipient: str = Field(min_length=1, max_length=320)
    message: str = Field(min_length=1, max_length=4000)


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    job_id: str


class JobStatus(BaseModel):
    job_id: str
    state: JobState


def send_with_provider(notification: Notification) -> None:
    """Send one notification: replace the log line with your email or SMS provider's call.

    A plain `def` runs in a worker thread, so a blocking client (smtplib, an
    SMS SDK, requests) cannot stall the service while it waits: every other
    request and every WebSocket client is served meanwhile. With an async
    client, make it `async def` and await the client: it then runs on the
    event loop, and must never block.
    """
    logger.info("notification for %s: %s", notification.recipient, notification.message)


async def deliver_notification(notification: Notification) -> None:
    """Run `send_with_provider`: on the event loop if it is async, else in a worker thread."""
    provider = send_with_provider
    if inspect.iscoroutinefunction(provider):
        await provider(notification)
    else:
        await anyio.to_thread.run_sync(provider, notification)


@router.post(
    "/notifications",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**UNAUTHENTICATED, **BODY_TOO_LARGE},
)
async def send_notification(
    notification: Notification,
    background_tasks: BackgroundTasks,
    identity: IdentityDep,
    jobs: JobsDep,
{%- if cookiecutter.use_websockets %}
    hub: HubDep,
{%- endif %}
) -> Accepted:
    """Queue a notification; it is delivered after this response is sent.

    Needs a valid bearer token unless authentication is off; the job is
    its `sub`'s to look up.
    """
    job_id = uuid.uuid4().hex
    jobs.accept(job_id, owner=identity.user)

    async def job() -> None:
        await deliver_notification(notification)
{%- if cookiecutter.use_websockets %}
        # Best effort: the notification is out, a broadcast outage is only logged.
        event = {"event": "notification.delivered", "job_id": job_id}
        await hub.announce(NOTIFICATIONS_CHANNEL, event, sender="notifications")
{%- endif %}

    background_tasks.add_task(jobs.run, job_id, "send_notification", job)
    return Accepted(job_id=job_id)


@router.get(
    "/jobs/{job_id}",
    responses={
        **UNAUTHENTICATED,
        **error(404, "No such job: unknown, forgotten (JOB_HISTORY) or another user's"),
    },
)
async def job_status(job_id: str, identity: IdentityDep, jobs: JobsDep) -> JobStatus:
    """The state of a job accepted earlier; 404 if unknown or another user's."""
    state = jobs.state(job_id, owner=identity.user)
    if state is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no job {echoed(job_id)!r}")
    return JobStatus(job_id=job_id, state=state)
