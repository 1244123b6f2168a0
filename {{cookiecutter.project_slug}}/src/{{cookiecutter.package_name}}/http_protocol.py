"""uvicorn's HTTP protocol as `python -m` runs it: an absolute-form request's host is its target's.

RFC 9112 section 3.2.2: a request whose target is in absolute form
(`GET http://rt.example.com/health HTTP/1.1`, what clients send to a proxy)
is for the host that target names, and the server ignores its Host header.
uvicorn's httptools protocol (as of uvicorn 0.54) drops the target's scheme
and authority and keeps Host, so an app cannot tell `GET
http://evil.example/health` with `Host: 127.0.0.1` from a request for
127.0.0.1, and TRUSTED_HOSTS (hosts.py) would let it through. This protocol
puts the target's authority in the Host header first, as the RFC reads, so
that hosts.py checks the host the request is for. uvicorn's h11 protocol
keeps the whole target in `raw_path`, where hosts.py reads it itself.

Plain `uvicorn` uses uvicorn's own protocol: pass it
`--http {{ cookiecutter.package_name }}.http_protocol:HttpToolsProtocol`
(or `--http h11`) for the same check.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as UvicornHttpToolsProtocol

from .hosts import ABSOLUTE_FORM

# What `python -m` passes to uvicorn as its `http` option.
PROTOCOL = f"{__name__}:HttpToolsProtocol"


class HttpToolsProtocol(UvicornHttpToolsProtocol):
    """uvicorn's httptools protocol, the Host of an absolute-form request replaced by its
    target's authority (`user@host`, if sent so, which hosts.py refuses)."""

    def on_headers_complete(self) -> None:
        # Before uvicorn's own, which hands the request to the app.
        if not self.url.startswith(b"/"):
            target = ABSOLUTE_FORM.match(self.url)
            hosts = [i for i, (name, _) in enumerate(self.headers) if name == b"host"]
            # With no Host, or two, it stays a request hosts.py refuses (RFC 9112 section 3.2).
            if target is not None and len(hosts) == 1:
                self.headers[hosts[0]] = (b"host", target[1])
        super().on_headers_complete()
