"""GET /: a one-page demo of the WebSocket protocol, plain HTML and script with no build step.

The page is static but for what is put in at serve time: a small JSON
config (whether authentication is on, and the command that mints a token for
it), and its base URL, the app's root. Behind a proxy that strips a path
prefix, the page at `/realtime` (no trailing slash) would otherwise resolve
`./static/realtime.js` and the WebSocket's URL against the site's root.
"""

from __future__ import annotations

import html
import json
from functools import cache
from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ..deps import AuthenticatorDep

router = APIRouter(tags=["demo"])

_PACKAGE = __name__.split(".")[0]
# The elements of demo.html replaced at serve time.
CONFIG_PLACEHOLDER = '<script id="config" type="application/json">{}</script>'
BASE_PLACEHOLDER = '<base href="./">'
TOKEN_COMMAND = f"python -m {_PACKAGE} token --sub alice --channels '*' --publish '*'"


@cache
def demo_page() -> tuple[str, str, str]:
    """The page, read from the installed package once, split around its placeholders."""
    page = (files(_PACKAGE) / "static" / "demo.html").read_text(encoding="utf-8")
    head, found_base, rest = page.partition(BASE_PLACEHOLDER)
    middle, found_config, tail = rest.partition(CONFIG_PLACEHOLDER)
    if not (found_base and found_config):
        raise RuntimeError(f"static/demo.html lacks {BASE_PLACEHOLDER} or {CONFIG_PLACEHOLDER}")
    return head, middle, tail


def base_element(root_path: str) -> str:
    """`<base>` naming the app's root, `root_path` being where the proxy serves it."""
    return f'<base href="{html.escape(root_path.rstrip("/") + "/", quote=True)}">'


def config_element(auth: bool) -> str:
    """The config as a `<script type="application/json">`, safe inside HTML."""
    text = json.dumps({"auth": auth, "token_command": TOKEN_COMMAND})
    # "<", ">" and "&" escaped as JSON: no "</script>" can end the element early.
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script id="config" type="application/json">{text}</script>'


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def demo(request: Request, authenticator: AuthenticatorDep) -> HTMLResponse:
    """Connect with a token, subscribe to channels, watch their messages, publish."""
    head, middle, tail = demo_page()
    base = base_element(request.scope.get("root_path", ""))
    return HTMLResponse(head + base + middle + config_element(authenticator.enabled) + tail)
