"""GET /: a one-page demo of the channels, plain HTML and script with no build step."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["demo"])

_PACKAGE = __name__.split(".")[0]


@cache
def demo_page() -> str:
    """The page, read from the installed package once, on first request."""
    return (files(_PACKAGE) / "static" / "demo.html").read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def demo() -> HTMLResponse:
    """Choose a channel, watch its messages arrive, send one."""
    return HTMLResponse(demo_page())
