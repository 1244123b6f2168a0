"""Which browser origins may open a WebSocket to this service.

Browsers send `Origin` on every WebSocket handshake and, unlike for fetch,
enforce nothing themselves: without this check any page a user visits could
connect on their behalf. Clients that are not browsers send no `Origin`
and are let through.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit


def origin_allowed(origin: str | None, host: str | None, allowed: Sequence[str]) -> bool:
    """Whether a handshake with this `Origin` (None: absent) and `Host` may proceed.

    Allowed are: no Origin; the service's own origin (the Origin's host and
    port equal the Host header, whatever the scheme, since TLS may end at a
    proxy); and each entry of `allowed`, which is `*` (any origin), an exact
    origin (`https://app.example.com`), or an origin with any port
    (`http://localhost:*`).
    """
    if origin is None:
        return True
    origin = origin.lower()
    if host is not None and urlsplit(origin).netloc == host.lower():
        return True
    return any(_matches(origin, entry.lower().rstrip("/")) for entry in allowed)


def _matches(origin: str, entry: str) -> bool:
    if entry == "*":
        return True
    if entry.endswith(":*"):
        base = entry[:-2]
        port = origin.removeprefix(base + ":")
        return origin == base or (port != origin and port.isdigit())
    return origin == entry
