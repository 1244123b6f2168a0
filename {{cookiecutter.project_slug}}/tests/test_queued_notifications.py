"""POST /notifications and GET /jobs/{id} on the queue: any web process, before and after restarts.

Each `web` is an app of its own, with its own Redis connections, as each
process of `WORKERS=2` or of another host is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.auth.tokens import mint
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings

from .workers import ledger, worker

pytest_plugins = ["tests.redis_server"]

SECRET = "a-test-secret-of-at-least-32-bytes"
NOTIFICATION = {"recipient": "ada@example.com", "message": "hi"}


def web(settings: Settings) -> TestClient:
    """A web process of its own (app, lifespan, Redis connections) on `settings`."""
    return TestClient(create_app(settings))


@pytest.fixture
def client(queue_settings: Settings) -> Iterator[TestClient]:
    with web(queue_settings) as opened:
        yield opened


def test_a_notification_is_queued_in_redis_and_answered_202(client: TestClient) -> None:
    response = client.post("/notifications", json=NOTIFICATION)
    assert response.status_code == 202
    job_id = response.json()["job_id"]
    assert client.get(f"/jobs/{job_id}").json() == {
        "job_id": job_id,
        "name": "send_notification",
        "state": "queued",
        "attempts": 0,
        "result": None,
        "error": None,
    }


@pytest.mark.anyio
async def test_every_web_process_answers_the_same_before_and_after_restarts(
    queue_settings: Settings, tmp_path: Path
) -> None:
    with web(queue_settings) as one:
        job_id = one.post("/notifications", json=NOTIFICATION).json()["job_id"]
    # The process that took it is gone; a worker runs it; two others answer.
    async with worker(queue_settings, tmp_path) as running:
        await running.wait_for(f"job send_notification {job_id}: attempt 1 succeeded")
    with web(queue_settings) as two, web(queue_settings) as three:
        answers = [w.get(f"/jobs/{job_id}").json() for w in (two, three)]
    assert answers[0] == answers[1]
    assert (answers[0]["state"], answers[0]["result"]) == ("succeeded", {"sent": True})
    assert ledger(tmp_path) == ["sent ada@example.com hi"]


def test_a_job_is_its_owners_to_look_up(queue_settings: Settings) -> None:
    settings = queue_settings.model_copy(update={"auth_secret": SECRET})
    settings = Settings.model_validate(settings.model_dump())  # validated again, with the key
    ada = {"Authorization": f"Bearer {mint(SECRET, 'ada', ttl=60)}"}
    bob = {"Authorization": f"Bearer {mint(SECRET, 'bob', ttl=60)}"}
    with web(settings) as client:
        assert client.post("/notifications", json=NOTIFICATION).status_code == 401
        job_id = client.post("/notifications", json=NOTIFICATION, headers=ada).json()["job_id"]
        assert client.get(f"/jobs/{job_id}", headers=ada).json()["state"] == "queued"
        assert client.get(f"/jobs/{job_id}", headers=bob).status_code == 404
        assert client.get(f"/jobs/{job_id}").status_code == 401


@pytest.mark.parametrize("job_id", ["nope", "0" * 32, "saq:job:x", "A" * 32])
def test_an_unknown_job_is_the_documented_404(client: TestClient, job_id: str) -> None:
    response = client.get(f"/jobs/{job_id}")
    assert response.status_code == 404
    assert response.json()["detail"] == f"no job {job_id!r}"


def test_a_redis_that_does_not_answer_gets_503_and_nothing_is_queued(
    silent_redis_url: str,
) -> None:
    settings = Settings(_env_file=None, redis_url=silent_redis_url, redis_timeout=0.3)
    with web(settings) as client:
        response = client.post("/notifications", json=NOTIFICATION)
        assert response.status_code == 503
        assert "nothing was queued" in response.json()["detail"]
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert "queue" in ready.json()["failing"]


def test_without_redis_url_the_job_routes_are_not_offered(settings: Settings) -> None:
    with web(settings) as client:
        assert client.post("/notifications", json=NOTIFICATION).status_code == 404
        assert client.get(f"/jobs/{'0' * 32}").status_code == 404
        assert "/jobs/{job_id}" not in client.get("/openapi.json").json()["paths"]
