"""Every supported combination starts under uvicorn as a real process, serves, and stops cleanly."""

from __future__ import annotations

import signal
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest

from tests.bakery import package_name, project_env
from tests.combinations import Combination
from tests.servers import free_port, start_service, stop_with_sigterm, wait_until_serving


def test_the_app_serves_health_and_ready_and_stops_cleanly_on_sigterm(
    project: Path, python: Path, combination: Combination, request: pytest.FixtureRequest
) -> None:
    # A bake with Redis gets a real one, as compose gives it: /ready checks it.
    redis = {"REDIS_URL": request.getfixturevalue("redis_url")} if combination.answers["use_redis"] else {}
    output = _serve_then_stop(python, project, redis)
    if combination.answers["use_lifespan"]:
        assert "shutdown complete: shared resources closed" in output
    if combination.answers["use_redis"] and combination.answers["use_websockets"]:
        assert "broadcasting through Redis at 127.0.0.1:" in output
    assert "broadcasting in memory" not in output


@pytest.mark.only_with(use_redis=True)
def test_without_redis_url_a_redis_bake_serves_and_says_what_it_does_instead(
    project: Path, python: Path, combination: Combination
) -> None:
    # Empty, as in .env.example: also hides a REDIS_URL this suite may run with.
    output = _serve_then_stop(python, project, {"REDIS_URL": ""})
    if combination.answers["use_websockets"]:
        assert "REDIS_URL is not set: broadcasting in memory, to this process's clients only" in output
    assert "REDIS_URL is not set: no Redis client" in output


def _serve_then_stop(python: Path, project: Path, extra_env: Mapping[str, str]) -> str:
    """Start the bake under uvicorn, want 200 from /health and /ready, SIGTERM it; its output."""
    port = free_port()
    env = project_env(
        project, HOST="127.0.0.1", PORT=str(port), LOG_LEVEL="info", SHUTDOWN_TIMEOUT="5", **extra_env
    )
    process = start_service(python, project, package_name(project), env)
    try:
        wait_until_serving(process, f"http://127.0.0.1:{port}/health")
        health = httpx.get(f"http://127.0.0.1:{port}/health")
        ready = httpx.get(f"http://127.0.0.1:{port}/ready")
    finally:
        output = stop_with_sigterm(process)
    assert (health.status_code, health.json()) == (200, {"status": "ok"}), output
    assert ready.status_code == 200, ready.text
    # uvicorn re-raises SIGTERM after a clean shutdown, so that is the exit status.
    assert process.returncode == -signal.SIGTERM, output
    assert "Application shutdown complete" in output
    assert "Finished server process" in output
    assert "Traceback" not in output
    return output
