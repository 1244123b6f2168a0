"""Every supported combination starts under uvicorn as a real process, serves, and stops cleanly."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from tests.bakery import package_name, project_env
from tests.combinations import Combination
from tests.servers import free_port, start_service, wait_until_serving


def test_the_app_serves_health_and_ready_and_stops_cleanly_on_sigterm(
    project: Path, python: Path, combination: Combination
) -> None:
    port = free_port()
    env = project_env(project, HOST="127.0.0.1", PORT=str(port), LOG_LEVEL="info", SHUTDOWN_TIMEOUT="5")
    process = start_service(python, project, package_name(project), env)
    try:
        wait_until_serving(process, f"http://127.0.0.1:{port}/health")
        health = httpx.get(f"http://127.0.0.1:{port}/health")
        ready = httpx.get(f"http://127.0.0.1:{port}/ready")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        assert ready.status_code == 200, ready.text
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    # uvicorn re-raises SIGTERM after a clean shutdown, so that is the exit status.
    assert process.returncode == -signal.SIGTERM, output
    assert "Application shutdown complete" in output
    assert "Finished server process" in output
    assert "Traceback" not in output
    if combination.answers["use_lifespan"]:
        assert "shutdown complete: shared resources closed" in output

