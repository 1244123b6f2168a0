"""Bounds on what one HTTP request may make the service hold: its body, and its errors.

Without a bound, a 200 MB JSON body is read whole (and parsed, about four
times its size in memory) before any validation refuses it; and FastAPI's
validation errors echo each bad input in full, so the refusal is as large
as the request.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# 413 and 422 as numbers: their constants were renamed in Starlette 0.48.
# Characters of a bad input that a validation error shows.
ECHOED = 64


class BodyLimit:
    """ASGI middleware: refuses with 413 a body larger than `limit` bytes, before reading it whole.

    A declared `Content-Length` over the limit is refused at once; a body
    without one (chunked) is counted as it arrives, and the read that passes
    the limit raises 413 to whatever is reading it. Add it with `app.add_middleware`.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        detail = f"body larger than {self.limit} bytes (MAX_BODY_SIZE)"
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                response = JSONResponse({"detail": detail}, 413)
                await response(scope, receive, send)
                return
        received = 0

        async def bounded() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # FastAPI and Starlette let an HTTPException from `receive` through.
                    raise HTTPException(413, detail)
            return message

        await self.app(scope, bounded, send)


async def short_validation_errors(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 answer, with each bad input cut to ECHOED characters of its JSON."""
    errors: list[dict[str, Any]] = []
    raw = exc.errors() if isinstance(exc, RequestValidationError) else []
    for error in jsonable_encoder(raw):
        if "input" in error:
            text = json.dumps(error["input"])
            if len(text) > ECHOED:
                error["input"] = text[:ECHOED] + "..."
        errors.append(error)
    return JSONResponse({"detail": errors}, 422)
