"""GET /static/realtime.js: the browser client library, one ES module with no build step.

Served whenever the WebSocket endpoint is, demo page or not (DEMO_ENABLED):
teams' own pages import it in production, and taking it from the service
keeps the client in step with the protocol the service speaks. The README's
"Browser client" section describes its API.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib.resources import files
from typing import Annotated

from fastapi import APIRouter, Header, Response, status

router = APIRouter(tags=["browser client"])

_PACKAGE = __name__.split(".")[0]
# RFC 9239: JavaScript is text/javascript.
MEDIA_TYPE = "text/javascript; charset=utf-8"
HEADERS = {
    # Revalidated at every use (a 304 while unchanged), so that a page never
    # runs a client older than the service it talks to.
    "Cache-Control": "no-cache",
    # Module scripts are fetched with CORS: this lets a page of another
    # origin import it. The file is public and no credentials are involved;
    # which origins may then connect is WS_ALLOWED_ORIGINS's to say.
    "Access-Control-Allow-Origin": "*",
}


@cache
def library() -> tuple[bytes, str]:
    """The file, read from the installed package once, and its ETag."""
    body = (files(_PACKAGE) / "static" / "realtime.js").read_bytes()
    return body, f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def matches(if_none_match: str, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (weakly compared, RFC 9110 section 13.1.2)."""
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


@router.get("/static/realtime.js", include_in_schema=False)
async def realtime_js(if_none_match: Annotated[str | None, Header()] = None) -> Response:
    """The library, or 304 when the browser's copy is current."""
    body, etag = library()
    headers = HEADERS | {"ETag": etag}
    if if_none_match is not None and matches(if_none_match, etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(body, media_type=MEDIA_TYPE, headers=headers)
