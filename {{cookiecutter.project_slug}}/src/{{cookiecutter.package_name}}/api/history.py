"""GET /channels/{channel}/history: the messages a channel keeps, for a client catching up."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import BaseModel

from ..auth import permissions
from ..auth.bearer import IdentityDep
from ..broadcast.backend import UNAVAILABLE, BroadcastUnavailable
from ..broadcast.envelope import Envelope, json_text
from ..deps import HubDep, SettingsDep
from ..errors import UNAUTHENTICATED, error
from .messages import Channel

logger = logging.getLogger(__name__)

router = APIRouter(tags=["broadcast"])


class HistoryPage(BaseModel):
    channel: str
    # The channel's latest offset and its epoch, now.
    offset: int
    epoch: str
    # Kept messages after `since`, oldest first, with no gap between them: if the
    # first one's offset is not since + 1 (or the epoch is not the one you knew),
    # older ones are no longer kept.
    messages: list[Envelope]


@router.get(
    "/channels/{channel}/history",
    response_model=HistoryPage,
    responses={
        **UNAUTHENTICATED,
        **error(403, "The token may not subscribe to this channel"),
        **error(503, "The broadcast backend is unavailable"),
    },
)
async def read_history(
    channel: Channel,
    identity: IdentityDep,
    hub: HubDep,
    settings: SettingsDep,
    since: Annotated[int, Query(ge=0, description="Return messages after this offset.")] = 0,
    limit: Annotated[
        int | None, Query(ge=1, description="At most this many (and at most HISTORY_SIZE).")
    ] = None,
) -> Response:
    """The kept messages of `channel` after offset `since`, oldest first, at most `limit`.

    Authorized as subscribing is (`permissions.can(identity, "subscribe", channel)`).
    Keeps at most HISTORY_SIZE messages per channel, for HISTORY_TTL seconds
    after its last publish; compare `epoch` with the one you hold: a new epoch
    means the history you knew is gone and offsets started again.
    """
    if not await permissions.can(identity, "subscribe", channel):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"may not subscribe to {channel}")
    count = min(limit or settings.history_size, settings.history_size)
    try:
        history = await hub.history(channel, since, count)
    except BroadcastUnavailable as exc:
        logger.debug("history of %r unavailable: %s", channel, exc, extra={"channel": channel})
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, UNAVAILABLE) from exc
    head = json_text({"channel": channel, **history.position._asdict()})
    # The envelopes are spliced in as stored: no parsing and dumping again.
    messages = ",".join(text for _, text in history.messages[:count])
    return Response(f'{head[:-1]},"messages":[{messages}]}}', media_type="application/json")
