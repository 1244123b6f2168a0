"""Work done once per test run and shared by every xdist worker: bakes, mypy caches.

Workers are separate processes, so "once" is a file lock in the run's
temporary folder: the first worker to ask does the work while holding it,
the others wait for it and then reuse the result.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.bakery import bake
from tests.combinations import Combination
from tests.environments import mypy_cache_for


def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temporary folder of this whole run (a worker's own sits inside it)."""
    root = tmp_path_factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


@contextmanager
def once_per_run(done: Path) -> Iterator[bool]:
    """True inside the block for the first caller, who holds the lock until the block ends.

    `done` is created when the first caller's block completes; a block that
    fails leaves the work to the next caller.
    """
    done.parent.mkdir(parents=True, exist_ok=True)
    with done.with_name(done.name + ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            fcntl.flock(lock, fcntl.LOCK_UN)
            yield False
            return
        yield True
        done.touch()


def baked(tmp_path_factory: pytest.TempPathFactory, combination: Combination) -> Path:
    """This combination's bake, made once per run and shared: never change it, copy it."""
    folder = run_folder(tmp_path_factory) / "bakes" / combination.id
    with once_per_run(folder.with_name(f"{combination.id}.done")) as first:
        if first:
            shutil.rmtree(folder, ignore_errors=True)  # what a failed first attempt left
            bake(combination.answers, folder)
    [project] = folder.iterdir()
    return project


@contextmanager
def shared_mypy_cache(tmp_path_factory: pytest.TempPathFactory, version: str) -> Iterator[Path]:
    """The mypy cache for one Python version, shared by every worker of this run.

    It starts as a copy of the environment's cache of the libraries (see
    tests/environments.py), which stays as it was made; mypy checks each
    bake's own modules and adds them. The first run per version has the
    cache alone; later ones share it (mypy replaces its entries atomically).
    """
    cache = run_folder(tmp_path_factory) / f"mypy-cache-py{version}"
    with once_per_run(cache.with_name(f"{cache.name}.filled")) as first:
        libraries = mypy_cache_for(version)
        if first and libraries.exists():
            shutil.rmtree(cache, ignore_errors=True)
            shutil.copytree(libraries, cache)
        yield cache
