"""Baking through the cookiecutter API, and running tools on a bake."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cookiecutter.main import cookiecutter

from tests.combinations import TEMPLATE

# pytest options that leave out the pytest plugins of schemathesis and
# Hypothesis, in the environments for test_serve.py's use alone (pyproject.toml
# says why): for a pytest run in a bake, or the suite's own with its addopts emptied.
NO_SCHEMATHESIS_PLUGINS = ("-p", "no:schemathesis", "-p", "no:hypothesispytest")


def bake(answers: Mapping[str, Any], output_dir: Path) -> Path:
    """Render the template with `answers` (the rest default) and return the project folder."""
    output_dir.mkdir(parents=True, exist_ok=True)
    project = cookiecutter(
        str(TEMPLATE), no_input=True, extra_context=dict(answers), output_dir=str(output_dir)
    )
    return Path(project)


def package_name(project: Path) -> str:
    [package] = [p.name for p in (project / "src").iterdir() if p.is_dir()]
    return package


def project_env(project: Path, **extra: str) -> dict[str, str]:
    """Environment for running a bake without installing it: its `src` on the path."""
    env = {**os.environ, "PYTHONPATH": str(project / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("VIRTUAL_ENV", None)
    env.update(extra)
    return env


def run(
    command: Sequence[str | Path], cwd: Path, *, timeout: float = 300, env: Mapping[str, str] | None = None
) -> str:
    """Run a command to completion; fail the test with its output when it exits non-zero."""
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, command))} exited {result.returncode} in {cwd}:\n{output}")
    return output
