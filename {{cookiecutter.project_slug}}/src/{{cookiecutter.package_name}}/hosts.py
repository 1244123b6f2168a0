"""Which `Host` the service answers to (TRUSTED_HOSTS): the guard against DNS rebinding.

A page on a domain its author controls can make that name resolve to
127.0.0.1 once the page has loaded. The browser then sends the page's
requests and WebSocket handshakes to a service on the visitor's own machine
as same-origin ones (`Host: attacker.example:8000`, `Origin:
http://attacker.example:8000`), which no check of `Origin` against `Host`
can tell apart from the service's own pages. The `Host` still names the
attacker's domain, though: answering only the names in TRUSTED_HOSTS
refuses the attack, before any route, `/ws` included, sees it.

Starlette's TrustedHostMiddleware (as of Starlette 1.10) would do, but for the
details: it compares `[::1]` with its brackets, so an entry `::1` never
matches; `localhost.` (the same name, fully qualified, which Django's
ALLOWED_HOSTS also takes for `localhost`) is not `localhost` to it; and it
answers a WebSocket handshake with a bare response where this service
refuses with `handshake.refuse`. This module parses `Host` as RFC 9110 section 7.2 writes
it (`uri-host [":" port]`), once, and looks the name up in a set.

A request whose target is in absolute form (`GET http://evil.example/health`)
is for the host its target names, whatever its Host says (RFC 9112 section
3.2.2). uvicorn's h11 protocol keeps such a target in `raw_path`, where this
module reads its authority in place of Host; its httptools protocol drops it,
and http_protocol.py (what `python -m` runs) moves it into Host instead.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Sequence

from fastapi import WebSocket, status
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from .handshake import SERVER_SEND, refuse
from .redaction import masked_authority

logger = logging.getLogger(__name__)

ANY = "*"
# What a developer's machine answers to by default: what rebinding attacks.
LOOPBACK = ("localhost", "127.0.0.1", "::1")
REFUSAL = "untrusted Host header"
# Trusted Host headers kept as sent, to skip parsing them again.
REMEMBERED = 64
# Characters of a Host header (or path) that a log line shows: a header can be kilobytes.
LOGGED = 64

# `scheme "://" authority`, the start of an absolute-form target (RFC 3986 section 3).
ABSOLUTE_FORM = re.compile(rb"[a-z][a-z0-9+.-]*://([^/?#]*)", re.IGNORECASE)

# A DNS name (labels of letters, digits, `-` and `_`, which container names
# use) with an optional trailing dot, or an IPv6 literal in brackets; then
# an optional port. Anything else (`a@b`, `a/b`, `a b`, `a:`) is no host.
_NAME = rb"[0-9a-z_-]+(?:\.[0-9a-z_-]+)*\.?"
_HOST = re.compile(
    rb"(?:\[(?P<ipv6>[0-9a-f:.]+)\]|(?P<name>" + _NAME + rb"))(?::(?P<port>[0-9]{1,5}))?",
    re.IGNORECASE,
)
_PATTERN = re.compile(rb"(?:\*\.)?" + _NAME, re.IGNORECASE)


def host_name(header: bytes) -> bytes | None:
    """The name a `Host` header value names: lower case, without its port, brackets or
    trailing dot, an IPv6 address in its short form (`::1`); None when it names no host."""
    match = _HOST.fullmatch(header)
    if match is None:
        return None
    port = match["port"]
    if port is not None and int(port) > 65535:
        return None
    name: bytes | None = match["name"]
    if name is not None:
        return name.lower().removesuffix(b".")
    try:
        return ipaddress.IPv6Address(match["ipv6"].decode()).compressed.encode()
    except ValueError:  # brackets around something that is no IPv6 address
        return None


def host_patterns(entries: Sequence[str]) -> list[str]:
    """TRUSTED_HOSTS entries in the form the middleware compares: lower case, no trailing dot,
    IPv6 addresses without brackets, in their short form.

    Raises ValueError for an empty list, or an entry that is not a host name, an IP
    address, `*.domain` (any name below domain, not domain itself) or `*` (any host).
    """
    if not entries:
        raise ValueError('name at least one host ("*" for any)')
    patterns = []
    for entry in entries:
        pattern = _pattern(entry.strip().lower())
        if pattern is None:
            raise ValueError(
                f"{entry!r} is not a host name, an IP address, *.domain or *"
                " (no scheme, port or path: rt.example.com)"
            )
        patterns.append(pattern)
    return patterns


def _pattern(text: str) -> str | None:
    if text == ANY:
        return ANY
    if ":" in text:  # of the entries allowed, only an IPv6 address has one
        address = text[1:-1] if text.startswith("[") and text.endswith("]") else text
        try:
            return ipaddress.IPv6Address(address).compressed
        except ValueError:
            return None
    return text.removesuffix(".") if _PATTERN.fullmatch(text.encode()) else None


class TrustedHosts:
    """ASGI middleware: HTTP 400 for a request or WebSocket handshake whose `Host` is
    missing, repeated, malformed, or not one of `patterns` (as `host_patterns` returns them):
    `{"detail": "untrusted Host header"}` to a request, that text to a handshake.

    Add it last with `app.add_middleware`, so that it runs first. Only a name is
    compared, never the port. With `*` among the patterns it lets everything through
    (better: do not add it then). A refusal is logged at INFO, one line each.
    """

    def __init__(self, app: ASGIApp, patterns: Sequence[str]) -> None:
        self.app = app
        self.patterns = list(patterns)
        self.any = ANY in self.patterns
        self.names = frozenset(p.encode() for p in self.patterns if not p.startswith("*."))
        # `*.example.com` matches what ends with `.example.com`.
        self.suffixes = tuple(p[1:].encode() for p in self.patterns if p.startswith("*."))
        # Host headers already found trusted, as sent: most requests repeat one of
        # a few, and a set lookup costs less than parsing. Bounded: a client can
        # vary the port.
        self.known: set[bytes] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.any or scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        # RFC 9112 section 3.2: a request with no Host, or more than one, is a 400.
        host: bytes | None = None
        for key, value in scope["headers"]:
            if key == b"host":
                if host is not None:
                    host = None
                    break
                host = value
        target = _target_authority(scope) if host is not None else None
        if target is not None:  # RFC 9112 section 3.2.2: the target's host, not Host's
            host = target
        if host is not None and (host in self.known or self.trusts(host)):
            await self.app(scope, receive, send)
            return
        self._log(scope, [value for key, value in scope["headers"] if key == b"host"], target)
        if scope["type"] == "websocket":
            # The server's own send, unless request_ids.py (outside) left it already.
            scope.setdefault(SERVER_SEND, send)
            await refuse(WebSocket(scope, receive, send), status.HTTP_400_BAD_REQUEST, REFUSAL)
        else:
            # The ErrorBody every other error has (errors.py), documented on every route.
            answer = JSONResponse({"detail": REFUSAL}, status.HTTP_400_BAD_REQUEST)
            await answer(scope, receive, send)

    def trusts(self, header: bytes) -> bool:
        """Whether a `Host` header value names a trusted host."""
        name = host_name(header)
        if name is None or not (name in self.names or name.endswith(self.suffixes)):
            return False
        if len(self.known) < REMEMBERED:
            self.known.add(header)
        return True

    def _log(self, scope: Scope, hosts: list[bytes], target: bytes | None) -> None:
        # One line per refusal and no rate limit: uvicorn's access log already
        # writes one for every request, refused or not.
        if target is not None:
            shown = _shown(masked_authority(target.decode("latin-1")))
            cause = f"the target's host {shown} is not in TRUSTED_HOSTS"
        elif len(hosts) == 1:
            shown = _shown(masked_authority(hosts[0].decode("latin-1")))
            cause = f"Host {shown} is not in TRUSTED_HOSTS"
        elif hosts:
            cause = f"{len(hosts)} Host headers, not one, to check against TRUSTED_HOSTS"
        else:
            cause = "no Host header to check against TRUSTED_HOSTS"
        logger.info(
            "refused %s %s: %s %s",
            "WebSocket" if scope["type"] == "websocket" else scope["method"],
            _shown(scope["path"]),
            cause,
            self.patterns,
        )


def _target_authority(scope: Scope) -> bytes | None:
    """The authority of the request's target when it is in absolute form (from `raw_path`,
    after the root path uvicorn puts in front), else None."""
    raw_path: bytes | None = scope.get("raw_path")
    start = len(scope.get("root_path", ""))
    # Origin form, nearly every request: one comparison.
    if raw_path is None or raw_path[start : start + 1] == b"/":
        return None
    target = ABSOLUTE_FORM.match(raw_path, start)
    return None if target is None else target[1]


def _shown(text: str) -> str:
    """`text` as a log line may show it: quoted, control characters escaped, cut short."""
    return repr(text[:LOGGED] + "...") if len(text) > LOGGED else repr(text)
