"""Bounds on what one request may make the service echo: validation errors, refusals.

FastAPI's validation errors echo each bad input in full, so a refusal is as
large as the request; so would a `detail` that quotes a path parameter or a
token. (The body itself is bounded by FastAPI's own `max_body_size`, set from
MAX_BODY_SIZE in `create_app`.)
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

# 422 as a number: its constant was renamed in Starlette 0.48.
# Characters of a bad input that a validation error shows.
ECHOED = 64


def echoed(text: str) -> str:
    """`text` as a refusal may quote it: its first ECHOED characters, then "..." if cut."""
    return text if len(text) <= ECHOED else text[:ECHOED] + "..."


async def short_validation_errors(request: Request, exc: Exception) -> Response:
    """FastAPI's 422 answer, with each bad input cut to ECHOED characters of its JSON.

    An input holding NaN or Infinity is echoed as its text: a JSON answer cannot carry it.
    """
    errors: list[dict[str, Any]] = []
    raw = exc.errors() if isinstance(exc, RequestValidationError) else []
    for error in jsonable_encoder(raw):
        if "input" in error:
            try:
                text = json.dumps(error["input"], allow_nan=False)
            except ValueError:  # NaN or Infinity (Python's json reads them): JSON has none
                error["input"] = text = json.dumps(error["input"])
            if len(text) > ECHOED:
                error["input"] = echoed(text)
        errors.append(error)
    # ASCII JSON, as json.dumps writes it by default: an input holding a lone
    # surrogate ("\\ud800", which pydantic refuses) is escaped, where
    # JSONResponse's UTF-8 would fail to encode it and answer 500.
    return Response(json.dumps({"detail": errors}), 422, media_type="application/json")
