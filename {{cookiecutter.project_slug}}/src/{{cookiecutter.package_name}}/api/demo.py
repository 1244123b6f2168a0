"""GET /: a one-page demo of the WebSocket protocol, plain HTML and script with no build step.

The page is static but for a small JSON config put in at serve time:
whether authentication is on, and the command that mints a token for it.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from ..deps import AuthenticatorDep

router = APIRouter(tags=["demo"])

_PACKAGE = __name__.split(".")[0]
# The element of demo.html that the config replaces.
CONFIG_PLACEHOLDER = '<script id="config" type="application/json">{}</script>'
TOKEN_COMMAND = f"python -m {_PACKAGE} token --sub alice --channels '*' --publish '*'"


@cache
def demo_page() -> tuple[str, str]:
    """The page, read from the installed package once, split around its config placeholder."""
    page = (files(_PACKAGE) / "static" / "demo.html").read_text(encoding="utf-8")
    before, found, after = page.partition(CONFIG_PLACEHOLDER)
    if not found:
        raise RuntimeError(f"static/demo.html lacks {CONFIG_PLACEHOLDER}")
    return before, after


def config_element(auth: bool) -> str:
    """The config as a `<script type="application/json">`, safe inside HTML."""
    text = json.dumps({"auth": auth, "token_command": TOKEN_COMMAND})
    # "<", ">" and "&" escaped as JSON: no "</script>" can end the element early.
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script id="config" type="application/json">{text}</script>'


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def demo(authenticator: AuthenticatorDep) -> HTMLResponse:
    """Connect with a token, subscribe to channels, watch their messages, publish."""
    before, after = demo_page()
    return HTMLResponse(before + config_element(authenticator.enabled) + after)
