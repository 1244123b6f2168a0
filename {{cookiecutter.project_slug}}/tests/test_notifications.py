from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.api import notifications


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


def test_an_unknown_job_is_404(client: TestClient) -> None:
    response = client.get("/jobs/nope")
    assert response.status_code == 404
    assert "nope" in response.json()["detail"]
