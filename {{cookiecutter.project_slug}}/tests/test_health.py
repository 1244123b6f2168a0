from __future__ import annotations

import asyncio
import logging

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse

from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.readiness import Readiness
from {{ cookiecutter.package_name }}.settings import Settings


def test_health_answers_ok(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_answers_200_when_every_check_passes(client: TestClient) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["failing"] == []
    assert all(outcome == "ok" for outcome in body["checks"].values())


def test_ready_answers_503_naming_each_failing_check_and_logs_why(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings)
    readiness: Readiness = app.state.readiness

    async def healthy() -> str | None:
        return None

    async def refused() -> str | None:
        return "connection refused"

    async def crashing() -> str | None:
        raise RuntimeError("boom")

    readiness.add("database", refused)
    readiness.add("cache", healthy)
    readiness.add("queue", crashing)
    with caplog.at_level(logging.WARNING), TestClient(app) as client:
        response = client.get("/ready")
        client.get("/ready")  # the same outcomes again: logged once, not per probe
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failing"] == ["database", "queue"]
    # The answer is public: names only. The reasons go to the log.
    checks = {name: body["checks"][name] for name in ("database", "cache", "queue")}
    assert checks == {"database": "failing", "cache": "ok", "queue": "failing"}
    failures = [r.getMessage() for r in caplog.records if r.name.endswith("readiness")]
    assert failures == [
        "readiness check 'database' failing: connection refused",
        "readiness check 'queue' failing: RuntimeError: boom",
    ]


def test_ready_reports_a_check_that_does_not_answer_in_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(Settings(_env_file=None, ready_timeout=0.05))

    async def hanging() -> str | None:
        await asyncio.Event().wait()
        return None

    app.state.readiness.add("slow", hanging)
    with caplog.at_level(logging.WARNING), TestClient(app) as client:
        response = client.get("/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["slow"] == "failing"
    assert "readiness check 'slow' failing: no answer within 0.05s" in caplog.messages


@pytest.mark.parametrize("path", ["/ws/lobby", "/ws/", "/WS", "/health/x"])
def test_a_websocket_handshake_to_a_path_no_route_serves_gets_404(
    client: TestClient, path: str
) -> None:
    # Starlette's default would refuse it with a bare 403, like a refused origin.
    with pytest.raises(WebSocketDenialResponse) as refused, client.websocket_connect(path):
        pass
    assert refused.value.status_code == 404
    assert refused.value.text == "no such endpoint"


def test_an_http_request_to_a_path_no_route_serves_still_gets_fastapis_404(
    client: TestClient,
) -> None:
    response = client.get("/no-such-path")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


def test_every_get_route_answers_head_with_the_gets_status_and_headers_and_no_body(
    client: TestClient,
) -> None:
    # Uptime monitors and load balancers probe with HEAD (RFC 9110 section 9.3.2).
    # Every GET operation the schema documents, the docs themselves, and `/` (the demo page,
    # where the bake has one: a 404 to GET must be a 404 to HEAD too).
    schema = client.get("/openapi.json").json()
    documented = [p for p, operations in schema["paths"].items() if "get" in operations]
    paths = [p for p in documented if "{" not in p] + ["/openapi.json", "/docs", "/redoc", "/"]
    assert "/health" in paths
    assert "/ready" in paths
    for path in paths:
        get, head = client.get(path), client.head(path)
        assert head.status_code == get.status_code, path
        assert head.content == b"", path
        for name in ("content-type", "content-length"):
            assert head.headers.get(name) == get.headers.get(name), (path, name)


def test_head_of_a_route_without_get_is_still_refused(client: TestClient) -> None:
    assert client.head("/no-such-path").status_code == 404
