from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings


class _Upstream(BaseHTTPRequestHandler):
    """A real HTTP server standing in for a dependency: /ok answers 200, anything else 500."""

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ok" else 500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    # A short poll interval keeps shutdown() from waiting half a second.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_ready_checks_each_upstream_with_the_shared_client(upstream: str) -> None:
    settings = Settings(_env_file=None, upstream_urls=[f"{upstream}/ok", f"{upstream}/broken"])
    with TestClient(create_app(settings)) as client:
        response = client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    # Named by position in UPSTREAM_URLS: a URL may hold credentials, and /ready is public.
    assert body["checks"]["upstream 1"] == "ok"
    assert body["checks"]["upstream 2"] == "failing"
    assert body["failing"] == ["upstream 2"]
    assert upstream not in response.text


def test_ready_is_200_when_every_upstream_answers(upstream: str) -> None:
    settings = Settings(_env_file=None, upstream_urls=[f"{upstream}/ok"])
    with TestClient(create_app(settings)) as client:
        assert client.get("/ready").status_code == 200


def test_an_unreachable_upstream_is_named_in_the_failure_and_its_reason_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused.
    settings = Settings(_env_file=None, upstream_urls=["http://user:secret@127.0.0.1:9/health"])
    with caplog.at_level(logging.WARNING), TestClient(create_app(settings)) as client:
        response = client.get("/ready")
    assert response.json()["failing"] == ["upstream 1"]
    assert "127.0.0.1" not in response.text
    assert "secret" not in response.text
    [logged] = [m for m in caplog.messages if m.startswith("readiness check 'upstream 1'")]
    assert "ConnectError" in logged


def test_startup_opens_and_shutdown_closes_the_shared_resources(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO), TestClient(create_app(settings)) as client:
        assert "startup complete" in caplog.text
        assert "shutdown complete" not in caplog.text
        assert client.get("/health").status_code == 200
    assert "shutdown complete: shared resources closed" in caplog.text
