"""Break15 findings, field report 2: settings a bad value of which still passes or crashes.

Copy into a default bake's `tests/` (package `realtime_service`, `use_redis=true`);
each test fails on main at 4367cdd.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import realtime_service as package

EXIT_WAIT = 30


def run(cwd: Path, command: list[str], **environment: str) -> subprocess.CompletedProcess[str]:
    """`python *command` with `environment` added, no `.env` in its folder."""
    source = str(Path(inspect.getfile(package)).parent.parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "REDIS_", "HISTORY_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (source, os.environ.get("PYTHONPATH"))))
    env.update(environment)
    return subprocess.run(
        [sys.executable, *command],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=EXIT_WAIT,
        check=False,
    )


COMMANDS = {
    "python-m": ["-m", package.__name__],
    "uvicorn": ["-m", "uvicorn", f"{package.__name__}.main:app", "--port", "0"],
}


@pytest.mark.parametrize("command", list(COMMANDS.values()), ids=list(COMMANDS))
@pytest.mark.parametrize(
    ("variable", "written", "extra"),
    [
        ("AUTH_PUBLIC_KEY", "not a PEM key", {}),
        ("AUTH_PUBLIC_KEY", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", {}),
        ("AUTH_JWKS_URL", "id.example.com/jwks.json", {}),
        ("HISTORY_TTL", "inf", {"REDIS_URL": "redis://127.0.0.1:1/0"}),
    ],
    ids=["pem-junk", "pem-bad-body", "jwks-no-scheme", "history-ttl-inf-redis"],
)
def test_a_bad_value_stops_the_process_in_one_line_without_a_traceback(
    tmp_path: Path, command: list[str], variable: str, written: str, extra: dict[str, str]
) -> None:
    finished = run(tmp_path, command, **{variable: written, **extra})
    assert finished.returncode != 0
    assert "Traceback" not in finished.stderr, finished.stderr[-600:]
    errors = [line for line in finished.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, finished.stderr[-600:]
    assert variable in errors[0]


def test_shutdown_timeout_inf_stops_python_m_in_one_line(tmp_path: Path) -> None:
    # Settings accept it (gt=0); `math.ceil(inf)` in __main__.serve raises OverflowError.
    finished = run(tmp_path, COMMANDS["python-m"], SHUTDOWN_TIMEOUT="inf")
    assert "Traceback" not in finished.stderr, finished.stderr[-600:]
    assert finished.stderr.strip().splitlines() == [
        line for line in finished.stderr.splitlines() if line.startswith("error: SHUTDOWN_TIMEOUT")
    ]


@pytest.mark.parametrize(
    ("variable", "written"),
    [
        # Accepted: a token that expired years ago then authenticates.
        ("AUTH_LEEWAY", "inf"),
        ("AUTH_LEEWAY", "1e12"),
        # Accepted: with Redis, /ready says ready and every publish answers 503, unlogged
        # (Redis refuses the expire time).
        ("HISTORY_TTL", "1e300"),
        # Accepted: never matches anything (no scheme), silently.
        ("WS_ALLOWED_ORIGINS", "app.example.com"),
        ("WS_ALLOWED_ORIGINS", "https://*.example.com"),
    ],
)
def test_a_value_that_cannot_work_is_refused_at_startup(
    refusal: Callable[[str, str], str], variable: str, written: str
) -> None:
    refusal(variable, written)
