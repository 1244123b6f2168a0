"""Break15 findings in the served app: field reports 4, 5, 7 and 11 (kinds the suite misses).

Copy into a default bake's `tests/` (package `realtime_service`); each test fails on
main at 4367cdd.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import realtime_service as package
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


# --- field report 4: refusals logged with their cause, under `uvicorn <package>.main:app` ----


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_under_plain_uvicorn_a_refused_handshake_is_logged_with_its_cause(tmp_path: Path) -> None:
    # `python -m` configures this package's loggers; `uvicorn <package>.main:app` (which the
    # README offers) does not, so every INFO refusal cause ("no such endpoint", "origin",
    # "not in TRUSTED_HOSTS") is lost and only uvicorn's bare "404" access line remains.
    port = _free_port()
    source = str(Path(inspect.getfile(package)).parent.parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "REDIS_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (source, os.environ.get("PYTHONPATH"))))
    env["TRUSTED_HOSTS"] = "127.0.0.1"
    command = [sys.executable, "-m", "uvicorn", f"{package.__name__}.main:app", "--port", str(port)]
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.1)
        handshake = (
            b"GET /no-such-socket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(handshake)
            assert sock.recv(65536).startswith(b"HTTP/1.1 404 ")
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    assert "no such endpoint" in stderr, stderr
