from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

import {{ cookiecutter.package_name }} as package
from {{ cookiecutter.package_name }}.api import notifications
from {{ cookiecutter.package_name }}.auth.tokens import mint
from {{ cookiecutter.package_name }}.limits import ECHOED
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings

from .documented import assert_documented
from .processes import child, exchange

# Every wait here is on a condition, bounded by this many seconds.
WAIT = 10.0

SECRET = "a-test-secret-of-at-least-32-bytes"


def test_a_notification_is_accepted_at_once_and_delivered_after(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        body = {"recipient": "ada@example.com", "message": "hi"}
        response = client.post("/notifications", json=body)
    assert response.status_code == 202
    job_id = response.json()["job_id"]
    assert response.json()["status"] == "accepted"
    # TestClient returns once the background task has run too.
    assert client.get(f"/jobs/{job_id}").json() == {"job_id": job_id, "state": "succeeded"}
    assert "notification for ada@example.com: hi" in caplog.text


def test_a_failing_delivery_is_logged_and_reported_not_lost(
    client: TestClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(notification: notifications.Notification) -> None:
        raise TimeoutError("provider did not answer")

    monkeypatch.setattr(notifications, "deliver_notification", broken)
    with caplog.at_level(logging.ERROR):
        response = client.post("/notifications", json={"recipient": "bob", "message": "x"})
    assert response.status_code == 202
    job_id = response.json()["job_id"]
    assert client.get(f"/jobs/{job_id}").json()["state"] == "failed"
    assert f"send_notification ({job_id}) failed" in caplog.text
    # The service keeps serving.
    assert client.get("/health").status_code == 200


def test_each_delivery_counts_in_the_job_metrics_by_its_outcome(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ("started_total", "succeeded_total", "failed_total", "running")

    def metrics() -> dict[str, float | None]:
        values = {
            name: REGISTRY.get_sample_value(
                f"{package.__name__}_jobs_{name}", {"function": "send_notification"}
            )
            for name in names
        }
        duration = f"{package.__name__}_job_duration_seconds_count"
        values["durations"] = REGISTRY.get_sample_value(duration, {"function": "send_notification"})
        return values

    before = metrics()
    body = {"recipient": "ada@example.com", "message": "hi"}
    assert client.post("/notifications", json=body).status_code == 202

    async def broken(notification: notifications.Notification) -> None:
        raise TimeoutError("provider did not answer")

    monkeypatch.setattr(notifications, "deliver_notification", broken)
    assert client.post("/notifications", json=body).status_code == 202
    # TestClient returns once the background task has run too.
    after = metrics()
    grown = {name: (after[name] or 0) - (before[name] or 0) for name in after}
    assert grown == {
        "started_total": 2,
        "succeeded_total": 1,
        "failed_total": 1,
        "running": 0,
        "durations": 2,
    }


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"recipient": "", "message": "x"},
        {"recipient": "a", "message": ""},
        {"recipient": "a", "message": "x" * 4001},
        {"recipient": ["a"], "message": "x"},
    ],
    ids=["empty", "no-recipient", "no-message", "message-too-long", "recipient-not-text"],
)
def test_an_invalid_notification_is_refused_with_422(
    client: TestClient, body: dict[str, object]
) -> None:
    response = client.post("/notifications", json=body)
    assert response.status_code == 422


def test_an_unknown_job_is_the_documented_404(client: TestClient) -> None:
    response = client.get("/jobs/nope")
    assert response.status_code == 404
    assert "nope" in response.json()["detail"]
    schema = create_app(Settings(_env_file=None)).openapi()
    assert_documented(schema, "GET", "/jobs/{job_id}", response)


@pytest.mark.parametrize("job_id", ["x" * 65, "x" * 60_000, "\u00e9" * 5000])
def test_a_404_for_a_job_echoes_at_most_a_short_prefix_of_its_id(
    client: TestClient, job_id: str
) -> None:
    # As a validation error shows 64 characters of a bad input: a 60 KB id (up to
    # uvicorn's bound on a request line) must not make a 60 KB answer.
    response = client.get(f"/jobs/{job_id}")
    assert response.status_code == 404
    assert response.json() == {"detail": f"no job {job_id[:ECHOED] + '...'!r}"}


# --- With authentication on ---------------------------------------------------


def bearer(user: str, *, ttl: float = 60, secret: str = SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(secret, user, ttl=ttl)}"}


@pytest.fixture
def guarded() -> Iterator[TestClient]:
    """A client of an app with AUTH_SECRET set."""
    with TestClient(create_app(Settings(_env_file=None, auth_secret=SECRET))) as client:
        yield client


def test_a_notification_needs_a_valid_token_when_authentication_is_on(
    guarded: TestClient,
) -> None:
    body = {"recipient": "ada@example.com", "message": "hi"}
    missing = guarded.post("/notifications", json=body)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    forged = bearer("ada", secret="another-secret-of-at-least-32-bytes")
    assert guarded.post("/notifications", json=body, headers=forged).status_code == 401
    expired = bearer("ada", ttl=-10)
    assert guarded.post("/notifications", json=body, headers=expired).status_code == 401
    assert guarded.post("/notifications", json=body, headers=bearer("ada")).status_code == 202


def test_a_job_answers_only_the_user_who_created_it(guarded: TestClient) -> None:
    body = {"recipient": "ada@example.com", "message": "hi"}
    job_id = guarded.post("/notifications", json=body, headers=bearer("ada")).json()["job_id"]
    mine = guarded.get(f"/jobs/{job_id}", headers=bearer("ada"))
    assert mine.json() == {"job_id": job_id, "state": "succeeded"}
    # Another user learns nothing, not even that the job exists.
    theirs = guarded.get(f"/jobs/{job_id}", headers=bearer("bob"))
    assert theirs.status_code == 404
    assert theirs.json() == {"detail": f"no job {job_id!r}"}
    assert guarded.get(f"/jobs/{job_id}").status_code == 401


def test_a_blocking_provider_runs_in_a_thread_and_the_service_keeps_answering(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The natural way to plug in a provider: a blocking call in a plain `def`.
    started, release = threading.Event(), threading.Event()

    def blocking(notification: notifications.Notification) -> None:
        started.set()
        release.wait(WAIT)
        assert threading.current_thread().name.startswith("AnyIO worker thread")

    monkeypatch.setattr(notifications, "send_with_provider", blocking)
    with ThreadPoolExecutor(2) as pool:
        # TestClient returns only once the background job is done: post from a thread.
        posted = pool.submit(client.post, "/notifications", json={"recipient": "a", "message": "b"})
        assert started.wait(WAIT), "the provider never ran"
        try:
            # Answered while the provider is still blocked (it blocks for up to WAIT):
            # the provider is not on the event loop.
            health = pool.submit(client.get, "/health")
            assert health.result(WAIT / 4).status_code == 200
        finally:
            release.set()
        assert posted.result(WAIT).status_code == 202


# `python -m`, its provider replaced by one that blocks until the process ends.
BLOCKED_SERVICE = f"""if True:
    import sys, threading
    from {package.__name__} import __main__
    from {package.__name__}.api import notifications

    def blocking(notification):
        # One write: print() writes the text and its newline apart, and the lines
        # of five threads printing at once could interleave.
        sys.stderr.write("provider blocked\\n")
        sys.stderr.flush()
        threading.Event().wait({WAIT})

    notifications.send_with_provider = blocking
    __main__.main(["serve"])
"""


@pytest.mark.anyio
async def test_stopping_with_blocked_jobs_logs_one_line_per_cancelled_job(tmp_path: Path) -> None:
    # uvicorn cancels the requests' tasks, the jobs' with them, once shutdown passes its
    # graceful timeout; each used to log an "Exception in ASGI application" traceback.
    jobs = 5
    service = child(tmp_path, "-c", BLOCKED_SERVICE, PORT="0", SHUTDOWN_TIMEOUT="0.5")
    async with service as served:
        await served.wait_listening()
        body = b'{"recipient": "ada@example.com", "message": "hi"}'
        request = (
            b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        for _ in range(jobs):
            assert (await exchange(served.port, request)).startswith(b"HTTP/1.1 202 ")
        await served.wait_for("provider blocked", count=jobs)
        await served.stop()
    output = "\n".join(served.lines)
    assert "Traceback" not in output, output
    cancelled = [line for line in served.lines if "cancelled before it finished" in line]
    assert len(cancelled) == jobs, output
    assert all(line.startswith("WARNING:  job send_notification (") for line in cancelled)
    # uvicorn's own one line: "Cancel 5 running task(s), timeout graceful shutdown exceeded".
    errors = [line for line in served.lines if line.startswith("ERROR:")]
    assert len(errors) == 1, output
    assert "graceful shutdown" in errors[0], output


def test_an_async_provider_runs_on_the_event_loop(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []

    async def on_the_loop(notification: notifications.Notification) -> None:
        threads.append(threading.current_thread().name)

    monkeypatch.setattr(notifications, "send_with_provider", on_the_loop)
    response = client.post("/notifications", json={"recipient": "a", "message": "b"})
    assert response.status_code == 202
    # Not anyio's worker threads, where a plain `def` provider runs.
    assert len(threads) == 1
    assert not threads[0].startswith("AnyIO worker thread")
    assert client.get(f"/jobs/{response.json()['job_id']}").json()["state"] == "succeeded"
