"""What the service answers when a request fails, and how its OpenAPI schema says so.

Every error has one of two bodies, and the schema documents each status a
route can answer with the body it carries (clients are generated from it):

- 422, anything wrong in the request's parameters or body, including a body
  that cannot be read as JSON: FastAPI's validation error,
  `{"detail": [{"type": ..., "loc": [...], "msg": ..., ...}]}`;
- every other error: `ErrorBody`, `{"detail": "what went wrong"}`, the body
  of FastAPI's HTTPException, and of the 400 for an untrusted Host; but for a
  413 that Starlette answers as text (`too_large`).

Routes build their `responses=` from the entries here (`**UNAUTHENTICATED`,
`**error(404, "...")`); the app adds EVERY_ROUTE's to each, and FastAPI the
422 to every route that has a parameter or a body.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.responses import Response

from .limits import short_validation_errors

# A route's `responses=`: each status code to its description, body model, headers.
Responses = dict[int | str, dict[str, Any]]


class ErrorBody(BaseModel):
    """The body of every error but a validation error: what went wrong, for a person to read."""

    detail: str


def error(status_code: int, description: str, **extra: Any) -> Responses:
    """A `responses=` entry: `status_code` answers `ErrorBody`, described for the schema."""
    return {status_code: {"model": ErrorBody, "description": description, **extra}}


UNAUTHENTICATED = error(
    401,
    "No bearer token, or an invalid one (only while authentication is on)",
    headers={
        "WWW-Authenticate": {
            "description": 'Bearer, with error="invalid_token" for a token that was refused',
            "schema": {"type": "string"},
        }
    },
)


def too_large(description: str) -> Responses:
    """The 413 of a route that takes a body: `ErrorBody`, or the text `Content Too Large`.

    FastAPI's `max_body_size` (MAX_BODY_SIZE) is Starlette's: a body whose
    Content-Length passes it is answered as text before any handler of ours
    runs (starlette/middleware/body_limit.py); one found too large only while
    it is read (sent chunked) gets `ErrorBody`.
    """
    text = {"text/plain": {"schema": {"type": "string"}}}
    return {413: {"model": ErrorBody, "description": description, "content": text}}


BODY_TOO_LARGE = too_large("Body larger than MAX_BODY_SIZE bytes")

# What any request can get before a route sees it, so the app documents it on every
# route (`FastAPI(responses=...)`): a Host outside TRUSTED_HOSTS (hosts.py), and a
# declared Content-Length over MAX_BODY_SIZE, a GET's too. A route's own entry for a
# status (its BODY_TOO_LARGE) takes the place of these.
EVERY_ROUTE: Responses = {
    **error(400, "Host header missing, repeated, malformed or not in TRUSTED_HOSTS"),
    **too_large("Content-Length larger than MAX_BODY_SIZE bytes"),
}

# FastAPI answers a JSON syntax error with 422 `json_invalid`, but a JSON body
# it fails to decode otherwise (bytes that are not UTF-8, nesting deeper than
# the interpreter's recursion limit) with a 400 of this detail:
# https://github.com/fastapi/fastapi/blob/0.165.0/fastapi/routing.py ("error parsing the body").
_FASTAPI_BODY_PARSE_FAILED = "There was an error parsing the body"


def invalid_json(reason: str, position: int = 0) -> dict[str, Any]:
    """A validation error for a body that is not JSON, worded as FastAPI words a syntax error."""
    return {
        "type": "json_invalid",
        "loc": ("body", position),
        "msg": "JSON decode error",
        "input": {},
        "ctx": {"error": reason},
    }


def why_not_json(exc: BaseException | None) -> str:
    """The reason a body that failed to decode as JSON is not JSON, in a few words."""
    if isinstance(exc, UnicodeDecodeError):
        return "body is not UTF-8"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, ValueError):  # past sys.get_int_max_str_digits() (CVE-2020-10735)
        return "a number with too many digits"
    return "body is not JSON"


async def http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's answer to an HTTPException, but 422 `json_invalid` for a body it could not parse.

    So every body that is not JSON gets the same documented answer, whatever
    made it so (registered for HTTPException in `create_app`).
    """
    if not isinstance(exc, HTTPException):  # registered for HTTPException alone
        raise exc
    if exc.status_code == 400 and exc.detail == _FASTAPI_BODY_PARSE_FAILED:
        refusal = RequestValidationError([invalid_json(why_not_json(exc.__cause__))])
        return await short_validation_errors(request, refusal)
    return await http_exception_handler(request, exc)
