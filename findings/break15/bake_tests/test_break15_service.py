"""Break15 findings in the served app: field reports 5 and 11 (kinds the suite misses).

Copy into a default bake's `tests/` (package `realtime_service`); each test fails on
main at 4367cdd.
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from realtime_service.broadcast.envelope import NotOurs, Position, message_frame, read_envelope
from realtime_service.main import create_app
from realtime_service.settings import Settings

from .live import serve

LIMIT = 64 * 1024


# --- field report 5: an envelope forged on Redis ------------------------------------------

GOOD = message_frame("lobby", Position(2, "2b45aad8"), "8db07f570e69", "http", '{"hi":1}')


def test_a_well_formed_envelope_is_read() -> None:
    assert read_envelope("lobby", GOOD, LIMIT) == Position(2, "2b45aad8")


@pytest.mark.parametrize(
    ("field", "forged"),
    [
        # README: `ts` is "UTC, ISO 8601 with milliseconds"; `origin` a process id of 12 hex
        # digits. `redis-cli PUBLISH realtime-service:0:broadcast:lobby` with these reaches
        # every client of the channel today.
        ("ts", "z"),
        ("ts", "not a time at all"),
        ("origin", "x"),
        ("origin", "<script>"),
    ],
)
def test_an_envelope_whose_fields_this_service_never_writes_is_not_ours(
    field: str, forged: str
) -> None:
    written = json.loads(GOOD)[field]
    text = GOOD.replace(f'"{field}":"{written}"', f'"{field}":"{forged}"')
    assert text != GOOD
    with pytest.raises(NotOurs):
        read_envelope("lobby", text, LIMIT)


# --- field report 11: absolute-form request targets -----------------------------------------


def _exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


@pytest.mark.anyio
async def test_an_absolute_form_target_naming_an_untrusted_host_is_refused() -> None:
    # RFC 9112 section 3.2.2: with an absolute-form target the server uses the target's
    # authority and ignores Host. uvicorn's httptools parser drops the authority, so the
    # Host checked (127.0.0.1) is not the host the request is for (evil.example).
    app = create_app(Settings(_env_file=None, trusted_hosts=["127.0.0.1"]))
    async with serve(app, http="httptools") as live:
        request = (
            b"GET http://evil.example/health HTTP/1.1\r\n"
            b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        answer = await asyncio.to_thread(_exchange, live.port, request)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:80]
