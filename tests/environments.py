"""One environment per Python version, each holding the superset of every bake's dependencies.

The running interpreter's own environment serves its version. For the other
offered versions the suite makes `.venvs/pyX.Y` with uv from the same lock
(`uv sync --locked`), using an interpreter found on this machine; a version
the machine does not have is reported, never silently replaced.

Each environment also gets mypy's cache of the libraries it holds
(`.venvs/mypy-pyX.Y`), built once per lock: what mypy learns from FastAPI,
Starlette, pydantic, redis-py and the standard library is the same for every
bake, and learning it is most of a mypy run (~8 s of CPU per version). Like
the environment, it is made when missing or when uv.lock changes, before the
suite runs; every bake's type check still reads all of its own code.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.bakery import bake, project_env
from tests.combinations import TEMPLATE, choices, toggles

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


def mypy_cache_for(version: str) -> Path:
    """mypy's cache of the libraries in `version`'s environment (made by `prepare`)."""
    return VENVS / f"mypy-py{version}"


def prepare(version: str) -> None:
    """Create or refresh `version`'s environment and mypy cache; raises with advice when it cannot."""
    if version != running_version():
        _sync(version)
    _fill_mypy_cache(version)


def _sync(version: str) -> None:
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
        [uv, "sync", "--locked", "--quiet", "--python", str(interpreter)],
        cwd=TEMPLATE,
        env=env,
        check=True,
    )


def _fill_mypy_cache(version: str) -> None:
    """Type-check a bake with every feature, to leave mypy's cache of what it imports.

    Skipped while the cache matches this lock. The bake's own findings do not
    matter here (the suite reports them); a mypy crash does.
    """
    cache = mypy_cache_for(version)
    stamp = cache / "made-for"
    lock = hashlib.sha256((TEMPLATE / "uv.lock").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == lock:
        return
    shutil.rmtree(cache, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="mypy-cache-bake-") as folder:
        answers = dict.fromkeys(toggles(), True) | {"python_version": version}
        project = bake(answers, Path(folder))
        checked = subprocess.run(
            [python_for(version), "-m", "mypy", "--cache-dir", cache],
            cwd=project,
            env=project_env(project),
            capture_output=True,
            text=True,
            check=False,
        )
    if checked.returncode not in (0, 1):
        raise RuntimeError(f"mypy failed while filling {cache}:\n{checked.stdout}{checked.stderr}")
    stamp.write_text(lock)


def main() -> None:
    """Build every offered version's environment and mypy cache now (CI's install step).

    Otherwise the suite builds them at its start.
    """
    for version in choices()["python_version"]:
        prepare(version)


if __name__ == "__main__":
    main()
