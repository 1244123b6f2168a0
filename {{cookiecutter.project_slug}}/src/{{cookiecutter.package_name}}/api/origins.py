"""Which browser origins may open a WebSocket to this service.

Browsers send `Origin` on every WebSocket handshake and, unlike for fetch,
enforce nothing themselves: without this check any page a user visits could
connect on their behalf. Clients that are not browsers send no `Origin`
and are let through.

Origins are compared as (scheme, host, port) with the default port filled in
(80 for http and ws, 443 for https and wss) and the host in lower case, as
RFC 6454 section 5 compares them: proxies and browsers write a default port
either way (`Host: rt.example.com:443` with `Origin: https://rt.example.com`).
Host names are read as TRUSTED_HOSTS reads them (`hosts.host_name`): a
trailing dot dropped, an IPv6 address in its short form, so that a `Host`
the service trusts names the same host in both checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from ..hosts import host_name

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


def origin_patterns(entries: Sequence[str]) -> list[str]:
    """WS_ALLOWED_ORIGINS entries, unchanged once each is found to be an origin.

    Raises ValueError for an entry that is not `*`, `scheme://host[:port]` or
    `scheme://host:*`: without a scheme, or with a path or a wildcard in the
    host, an entry would never match any browser's `Origin`.
    """
    for entry in entries:
        if entry != "*" and parse_origin(entry.rstrip("/")) is None:
            raise ValueError(
                f"{entry!r} is not an origin: scheme://host, scheme://host:port,"
                " scheme://host:* (any port) or * (any origin)"
            )
    return list(entries)


def parse_origin(text: str) -> Origin | None:
    """`scheme://host[:port]` as (scheme, host, port): lower case, the host as
    `hosts.host_name` reads it, the default port filled in, None for `:*` (any port);
    None when it is not such an origin."""
    any_port = text.endswith(":*")
    if any_port:
        text = text[:-2]
    try:
        split = urlsplit(text.lower())
        port = split.port
    except ValueError:  # a port that is not a number, or out of range
        return None
    if not split.scheme or split.path or split.query or split.fragment:
        return None
    # The whole netloc: userinfo (`a@b`), a wildcard or an empty host is no origin's.
    name = host_name(split.netloc.encode("utf-8", "replace"))
    if name is None:
        return None
    if any_port:
        return split.scheme, name.decode(), None
    if port is None:
        port = DEFAULT_PORTS.get(split.scheme)
    return split.scheme, name.decode(), port


def _same_host(name: str, port: int | None, scheme: str, host: str) -> bool:
    if host_name(host.encode("utf-8", "replace")) != name.encode():
        return False  # also when `host` is no Host header at all
    # host_name found a port of at most five digits, if any: urlsplit reads it.
    host_port = urlsplit(f"//{host}").port
    return (DEFAULT_PORTS.get(scheme) if host_port is None else host_port) == port
