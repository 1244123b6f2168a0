"""One environment per Python version, each holding the superset of every bake's dependencies.

The running interpreter's own environment serves its version. For the other
offered versions the suite makes `.venvs/pyX.Y` with uv from the same lock
(`uv sync --frozen`), using an interpreter found on this machine; a version
the machine does not have is reported, never silently replaced.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.combinations import TEMPLATE, choices

VENVS = TEMPLATE / ".venvs"


def running_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def find_interpreter(version: str) -> Path | None:
    """A working `pythonX.Y` on PATH or under pyenv, or None."""
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}"), reverse=True)
    for candidate in candidates:
        if candidate is None:
            continue
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return Path(candidate)
    return None


def python_for(version: str) -> Path:
    """The Python to run a bake for `version` with (its environment must exist)."""
    if version == running_version():
        return Path(sys.executable)
    return VENVS / f"py{version}" / "bin" / "python"


def prepare(version: str) -> None:
    """Create or refresh the environment for `version`; raises with advice when it cannot."""
    if version == running_version():
        return
    interpreter = find_interpreter(version)
    if interpreter is None:
        raise RuntimeError(
            f"Python {version} is offered by the template but not found on this machine "
            f"(looked for python{version} on PATH and under pyenv); install it to verify those bakes"
        )
    uv = shutil.which("uv")
    if uv is None:
        raise RuntimeError("uv is needed to build the per-version environments: pip install uv")
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(VENVS / f"py{version}")}
    subprocess.run(
        [uv, "sync", "--frozen", "--quiet", "--python", str(interpreter)],
        cwd=TEMPLATE,
        env=env,
        check=True,
    )


def main() -> None:
    """Build every offered version's environment now (CI's install step), not at the suite's start."""
    for version in choices()["python_version"]:
        prepare(version)


if __name__ == "__main__":
    main()
