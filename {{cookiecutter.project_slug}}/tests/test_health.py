from __future__ import annotations

import asyncio

from fastapi.testclient import TestClient

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


def test_ready_answers_503_naming_each_failing_check(settings: Settings) -> None:
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
    with TestClient(app) as client:
        response = client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failing"] == ["database", "queue"]
    assert body["checks"]["database"] == "connection refused"
    assert body["checks"]["cache"] == "ok"
    assert body["checks"]["queue"] == "RuntimeError: boom"


def test_ready_reports_a_check_that_does_not_answer_in_time() -> None:
    app = create_app(Settings(_env_file=None, ready_timeout=0.05))

    async def hanging() -> str | None:
        await asyncio.Event().wait()
        return None

    app.state.readiness.add("slow", hanging)
    with TestClient(app) as client:
        response = client.get("/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["slow"] == "no answer within 0.05s"
