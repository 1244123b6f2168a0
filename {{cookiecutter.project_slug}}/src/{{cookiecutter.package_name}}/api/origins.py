"""Which browser origins may open a WebSocket to this service.

Browsers send `Origin` on every WebSocket handshake and, unlike for fetch,
enforce nothing themselves: without this check any page a user visits could
connect on their behalf. Clients that are not browsers send no `Origin`
and are let through.

Origins are compared as (scheme, host, port) with the default port filled in
(80 for http and ws, 443 for https and wss) and the host in lower case, as
RFC 6454 section 5 compares them: proxies and browsers write a default port
either way (`Host: rt.example.com:443` with `Origin: https://rt.example.com`).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}

# (scheme, host, port), the port None for "any" in an allowed entry.
Origin = tuple[str, str, int | None]


def origin_allowed(origin: str | None, host: str | None, allowed: Sequence[str]) -> bool:
    """Whether a handshake with this `Origin` (None: absent) and `Host` may proceed.

    Allowed are: no Origin; the service's own origin (the Origin's host and
    port equal the Host header's, whatever the scheme, since TLS may end at a
    proxy; a Host without a port has the Origin scheme's default); and each
    entry of `allowed`: `*` (any origin), an origin (`https://app.example.com`,
    default port or not), or an origin with any port (`http://localhost:*`).
    """
    if origin is None:
        return True
    if "*" in allowed:
        return True
    parts = parse_origin(origin)
    if parts is None:
        return False  # "null" (sandboxed pages, file:) or junk: never the service's own
    scheme, name, port = parts
    if host is not None and _same_host(name, port, scheme, host):
        return True
    for entry in allowed:
        wanted = parse_origin(entry.rstrip("/"))
        if wanted is not None and wanted[:2] == (scheme, name) and wanted[2] in (None, port):
            return True
    return False


def parse_origin(text: str) -> Origin | None:
    """`scheme://host[:port]` as (scheme, host, port): lower case, the default port
    filled in, None for `:*` (any port); None when it is not such an origin."""
    any_port = text.endswith(":*")
    if any_port:
        text = text[:-2]
    try:
        split = urlsplit(text.lower())
        port = split.port
    except ValueError:  # a port that is not a number, or out of range
        return None
    if not split.scheme or not split.hostname or split.path or split.query or split.fragment:
        return None
    if any_port:
        return split.scheme, split.hostname, None
    if port is None:
        port = DEFAULT_PORTS.get(split.scheme)
    return split.scheme, split.hostname, port


def _same_host(name: str, port: int | None, scheme: str, host: str) -> bool:
    try:
        split = urlsplit(f"//{host.lower()}")
        host_port = split.port
    except ValueError:
        return False
    if host_port is None:
        host_port = DEFAULT_PORTS.get(scheme)
    return split.hostname == name and host_port == port
