"""POST /notifications and GET /jobs/{id} on the queue: any web process, before and after restarts.

Each `web` is an app of its own, with its own Redis connections, as each
process of `WORKERS=2` or of another host is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

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


def test_a_redis_that_does_not_answer_gets_503_naming_the_safe_retry(
    silent_redis_url: str,
) -> None:
    settings = Settings(_env_file=None, redis_url=silent_redis_url, redis_timeout=0.3)
    with web(settings) as client:
        response = client.post("/notifications", json=NOTIFICATION)
        assert response.status_code == 503
        # A timeout may come after Redis stored the job: the answer says how to retry safely.
        assert "retry with the same Idempotency-Key" in response.json()["detail"]
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert "queue" in ready.json()["failing"]


def test_without_redis_url_the_job_routes_are_not_offered(settings: Settings) -> None:
    with web(settings) as client:
        assert client.post("/notifications", json=NOTIFICATION).status_code == 404
        assert client.get(f"/jobs/{'0' * 32}").status_code == 404
        assert "/jobs/{job_id}" not in client.get("/openapi.json").json()["paths"]


def test_a_retry_with_the_same_idempotency_key_queues_the_job_once(
    queue_settings: Settings,
) -> None:
    settings = Settings.model_validate(
        queue_settings.model_copy(update={"auth_secret": SECRET}).model_dump()
    )
    ada = {"Authorization": f"Bearer {mint(SECRET, 'ada', ttl=60)}"}
    bob = {"Authorization": f"Bearer {mint(SECRET, 'bob', ttl=60)}"}
    with web(settings) as one, web(settings) as two:

        def post(client: TestClient, user: dict[str, str], key: str | None = None) -> Response:
            headers = user if key is None else {**user, "Idempotency-Key": key}
            return client.post("/notifications", json=NOTIFICATION, headers=headers)

        first, again = post(one, ada, "k1"), post(two, ada, "k1")
        other, bobs = post(one, ada, "k2"), post(one, bob, "k1")
        plain = [post(one, ada), post(one, ada)]
    assert {r.status_code for r in (first, again, other, bobs, *plain)} == {202}
    ids = [r.json()["job_id"] for r in (first, again, other, bobs, *plain)]
    # The same key and user: one job. Another key, another user, or no key: another job.
    assert ids[0] == ids[1]
    assert len(set(ids)) == 5


@pytest.mark.parametrize("key", ["", " leading-space", "x" * 256, "tab\there"])
def test_an_idempotency_key_that_is_not_printable_ascii_is_refused_with_422(
    client: TestClient, key: str
) -> None:
    response = client.post("/notifications", json=NOTIFICATION, headers={"Idempotency-Key": key})
    assert response.status_code == 422


@pytest.mark.parametrize("message", ["\ud800", "a\udfffb"], ids=["lone-high", "lone-low"])
def test_a_body_holding_a_lone_surrogate_is_a_422(client: TestClient, message: str) -> None:
    escaped = message.encode("unicode_escape").decode()  # "\\ud800" in the JSON text
    body = '{"recipient": "ada@example.com", "message": "' + escaped + '"}'
    response = client.post(
        "/notifications", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "message"]


def test_an_idempotency_key_sent_with_another_request_is_refused_with_409(
    client: TestClient,
) -> None:
    first = client.post("/notifications", json=NOTIFICATION, headers={"Idempotency-Key": "k"})
    other = {**NOTIFICATION, "message": "something else"}
    again = client.post("/notifications", json=other, headers={"Idempotency-Key": "k"})
    assert first.status_code == 202
    assert again.status_code == 409
    assert "Idempotency-Key 'k' was used with another request" in again.json()["detail"]
