"""Fixtures of the template's suite: the matrix, one bake per combination, real servers."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests import environments
from tests.bakery import bake
from tests.combinations import TEMPLATE, Combination, supported


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--combination",
        action="append",
        default=[],
        help="run the per-combination tests for this combination id only (repeatable)",
    )


def selected(config: pytest.Config) -> list[Combination]:
    wanted: list[str] = config.getoption("--combination")
    combos = supported()
    unknown = set(wanted) - {c.id for c in combos}
    if unknown:
        raise pytest.UsageError(f"unknown combination id(s): {', '.join(sorted(unknown))}")
    return [c for c in combos if not wanted or c.id in wanted]


def pytest_configure(config: pytest.Config) -> None:
    # Only the controlling process builds environments; xdist workers find them ready.
    if hasattr(config, "workerinput"):
        return
    for version in sorted({c.python_version for c in selected(config)}):
        environments.prepare(version)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # `@pytest.mark.only_with(use_redis=True)` narrows a test to the
    # combinations with those answers.
    if "combination" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("only_with")
        wanted = marker.kwargs if marker else {}
        combos = [
            c
            for c in selected(metafunc.config)
            if all(c.answers[name] == value for name, value in wanted.items())
        ]
        metafunc.parametrize(
            "combination",
            [pytest.param(c, id=c.id, marks=pytest.mark.xdist_group(c.id)) for c in combos],
        )


class Bakery:
    """Bakes each combination once per worker process and hands out the same folder."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._projects: dict[str, Path] = {}

    def project(self, combination: Combination) -> Path:
        if combination.id not in self._projects:
            self._projects[combination.id] = bake(combination.answers, self._root / combination.id)
        return self._projects[combination.id]


@pytest.fixture(scope="session")
def bakery(tmp_path_factory: pytest.TempPathFactory) -> Bakery:
    return Bakery(tmp_path_factory.mktemp("bakes"))


@pytest.fixture
def project(bakery: Bakery, combination: Combination, tmp_path: Path) -> Path:
    """A private copy of this combination's bake: what one test's tools write, the next never sees."""
    pristine = bakery.project(combination)
    return Path(shutil.copytree(pristine, tmp_path / pristine.name, symlinks=True))


def mypy_cache_for(tmp_path_factory: pytest.TempPathFactory, version: str) -> Path:
    """The mypy cache for one Python version, shared by every xdist worker of this run.

    Checking FastAPI, Starlette, pydantic and redis-py is most of a cold run;
    mypy re-checks whatever changed (each bake's own modules) and reuses the
    rest. mypy replaces cache files atomically, so workers can share one.
    """
    run_root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        run_root = run_root.parent  # each worker's basetemp sits in the run's
    return run_root / f"mypy-cache-py{version}"


@pytest.fixture
def mypy_cache(combination: Combination, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mypy_cache_for(tmp_path_factory, combination.python_version)


@pytest.fixture
def python(combination: Combination) -> Path:
    """The interpreter whose environment matches the combination's Python version."""
    return environments.python_for(combination.python_version)


def _generated_redis_fixtures() -> ModuleType:
    """The baked projects' Redis test helpers, loaded from the template (the file has no Jinja)."""
    path = TEMPLATE / "{{cookiecutter.project_slug}}" / "tests" / "redis_server.py"
    spec = importlib.util.spec_from_file_location("generated_redis_server", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a loopback port, started as the generated tests start theirs."""
    fixtures = _generated_redis_fixtures()
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.fail(fixtures.HOW_TO_GET_REDIS, pytrace=False)
    server = fixtures.RedisServer(executable, tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.stop()
