"""Every supported combination starts under uvicorn as a real process, serves, and stops cleanly.

While it serves, schemathesis checks its API against its own OpenAPI schema
(issue 15, field report 13): every status and body the service answers must be
one the schema documents, since teams generate clients from it.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest

from tests.bakery import package_name, project_env
from tests.combinations import Combination
from tests.servers import free_port, start_service, stop_with_sigterm, wait_until_serving

# The field report's `schemathesis run <base>/openapi.json --checks all`, within
# the suite's budget (< 90 s on 2 cores): every check, the default phases, at
# most 5 examples per operation and phase, a fixed seed (schemathesis.toml).
# Run in this process (click's CliRunner) rather than as a command:
# schemathesis's imports (~1.5 s of CPU) are then paid once per xdist worker,
# and a run costs ~0.5 s (as a command, ~1.6 s each; 16 runs a suite). The
# service runs as a fresh bake does, authentication off, so that every route's
# success is exercised too; the 401s are the generated tests/test_errors.py's.
SCHEMATHESIS = ("--config-file", str(Path(__file__).with_name("schemathesis.toml")))


@pytest.fixture(autouse=True)
def _hypothesis_files_in_tmp(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # schemathesis runs Hypothesis in this process, which keeps its files in
    # ./.hypothesis unless told otherwise: the template's own folder here.
    monkeypatch.setenv("HYPOTHESIS_STORAGE_DIRECTORY", str(tmp_path_factory.getbasetemp() / "hypothesis"))


def test_the_app_serves_what_its_schema_says_and_stops_cleanly_on_sigterm(
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
    """Start the bake under uvicorn, want 200 from /health and /ready and nothing from
    schemathesis, SIGTERM it; its output."""
    port = free_port()
    env = project_env(
        project, HOST="127.0.0.1", PORT=str(port), LOG_LEVEL="info", SHUTDOWN_TIMEOUT="5", **extra_env
    )
    # Imported here: collecting this module stays cheap (~1 s of CPU less).
    from click.testing import CliRunner
    from schemathesis.cli import schemathesis

    process = start_service(python, project, package_name(project), env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(process, f"{base}/health")
        health = httpx.get(f"{base}/health")
        ready = httpx.get(f"{base}/ready")
        fuzzed = CliRunner().invoke(
            schemathesis, [*SCHEMATHESIS, "run", f"{base}/openapi.json", "--checks=all"]
        )
    finally:
        output = stop_with_sigterm(process)
    assert (health.status_code, health.json()) == (200, {"status": "ok"}), output
    assert ready.status_code == 200, ready.text
    found = f"{fuzzed.output}{fuzzed.exception or ''}"
    assert fuzzed.exit_code == 0, f"schemathesis found what the schema does not say:\n{found}"
    # uvicorn re-raises SIGTERM after a clean shutdown, so that is the exit status.
    assert process.returncode == -signal.SIGTERM, output
    assert "Application shutdown complete" in output
    assert "Finished server process" in output
    assert "Traceback" not in output
    return output
