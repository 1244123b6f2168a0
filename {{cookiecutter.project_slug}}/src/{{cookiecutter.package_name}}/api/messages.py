"""POST /channels/{channel}/messages: publish a JSON body to a channel from the server side."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from ..auth import permissions
from ..auth.bearer import IdentityDep
from ..broadcast.backend import UNAVAILABLE, BroadcastUnavailable
from ..broadcast.channels import CHANNEL_PATTERN, MAX_CHANNEL_LENGTH
from ..broadcast.envelope import InvalidJSON, check_json
from ..deps import HubDep, SettingsDep
from ..errors import UNAUTHENTICATED, error, invalid_json, too_large, why_not_json

logger = logging.getLogger(__name__)

router = APIRouter(tags=["broadcast"])

Channel = Annotated[
    str,
    Path(
        max_length=MAX_CHANNEL_LENGTH,
        pattern=CHANNEL_PATTERN,
        description="Letters, digits, '_', '-', '.', ':'; starts alphanumeric.",
    ),
]

# The body is read as bytes and spliced into the envelope unparsed, so the
# schema is declared here rather than inferred from a parameter.
_JSON_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "Any JSON value; subscribers receive it as the envelope's `data`.",
        "content": {"application/json": {"schema": {}}},
    }
}


class Published(BaseModel):
    status: Literal["accepted"] = "accepted"
    channel: str
    # The message's place in the channel's history, as its envelope carries it.
    offset: int
    epoch: str
    origin: str


@router.post(
    "/channels/{channel}/messages",
    status_code=status.HTTP_202_ACCEPTED,
    openapi_extra=_JSON_BODY,
    responses={
        **UNAUTHENTICATED,
        **error(403, "The token may not publish to this channel"),
        **too_large("Body larger than WS_MAX_MESSAGE_SIZE (or MAX_BODY_SIZE) bytes"),
        **error(503, "The broadcast backend is unavailable"),
    },
)
async def publish_message(
    channel: Channel, request: Request, identity: IdentityDep, hub: HubDep, settings: SettingsDep
) -> Published:
    """Publish the JSON body to every subscriber of `channel`; 503 when broadcast is down.

    Needs `Authorization: Bearer <token>` whose claims allow publishing to
    `channel` (`permissions.can`), unless authentication is off.
    """
    if not await permissions.can(identity, "publish", channel):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"may not publish to {channel}")
    # Requiring JSON also keeps other sites' pages out: a cross-origin fetch
    # with this content type needs a CORS preflight this service never grants.
    # Refused as FastAPI refuses a body it cannot read (errors.py): 422.
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type != "application/json":
        raise RequestValidationError([not_declared_json(content_type)])
    body = await read_body(request, settings.ws_max_message_size)
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise RequestValidationError([invalid_json(why_not_json(exc), exc.start)]) from exc
    try:
        check_json(text)
    except InvalidJSON as exc:
        raise RequestValidationError([invalid_json(str(exc))]) from exc
    try:
        position = await hub.publish(channel, text, sender="http", via="http")
    except BroadcastUnavailable as exc:
        logger.debug("HTTP publish to %r failed: %s", channel, exc, extra={"channel": channel})
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, UNAVAILABLE) from exc
    return Published(
        channel=channel, offset=position.offset, epoch=position.epoch, origin=hub.origin
    )


def not_declared_json(content_type: str) -> dict[str, Any]:
    """The validation error for a body sent as anything but `application/json`."""
    return {
        "type": "content_type",
        "loc": ("header", "content-type"),
        "msg": "Content-Type must be application/json",
        "input": content_type,
    }


# 413 as a number: its constant was renamed in Starlette 0.48.


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
