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
from tests.combinations import TEMPLATE, Combination, supported, toggles
from tests.shared import baked


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


@pytest.hookimpl(optionalhook=True)  # `-p no:xdist` still works
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    # `-n auto`: one worker more than cores. About a third of the suite's time
    # is spent waiting on real processes (servers starting and stopping,
    # timeouts under test); a spare worker keeps the cores busy meanwhile.
    return (os.cpu_count() or 1) + 1


def pytest_configure(config: pytest.Config) -> None:
    # Only the controlling process builds environments; xdist workers find them ready.
    if hasattr(config, "workerinput"):
        return
    for version in sorted({c.python_version for c in selected(config)}):
        environments.prepare(version)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # `@pytest.mark.only_with(use_redis=True)` narrows a test to the
    # combinations with those answers; `@pytest.mark.default_bake(False)` to
    # every combination but the `--no-input` one (True: that one alone).
    if "combination" in metafunc.fixturenames:
        only_with = metafunc.definition.get_closest_marker("only_with")
        wanted = only_with.kwargs if only_with else {}
        default_bake = metafunc.definition.get_closest_marker("default_bake")
        combos = [
            c
            for c in selected(metafunc.config)
            if all(c.answers[name] == value for name, value in wanted.items())
            and (default_bake is None or c.is_default == default_bake.args[0])
        ]
        metafunc.parametrize("combination", [pytest.param(c, id=c.id) for c in combos])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Longest first: xdist hands tests out in this order as workers free up,
    # so the short ones fill in around the long ones at the end instead of
    # one worker finishing a long test while the others idle.
    order: dict[str, tuple[bool, int]] = {}
    for item in items:
        combination = _combination_of(item)
        long_running = item.get_closest_marker("long_running")
        # Among long tests, a bake with more features has more to do.
        features = sum(combination.answers[t] for t in toggles()) if combination else len(toggles())
        order[item.nodeid] = (long_running is None, -features if long_running else 0)
    items.sort(key=lambda item: order[item.nodeid])


def _combination_of(item: pytest.Item) -> Combination | None:
    callspec = getattr(item, "callspec", None)
    combination = callspec.params.get("combination") if callspec else None
    return combination if isinstance(combination, Combination) else None


@pytest.fixture
def project(combination: Combination, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    """A private copy of this combination's bake: what one test's tools write, the next never sees."""
    pristine = baked(tmp_path_factory, combination)
    return Path(shutil.copytree(pristine, tmp_path / pristine.name, symlinks=True))


@pytest.fixture
def mypy_cache(combination: Combination, tmp_path: Path) -> Path:
    """A cache of this bake's own, starting as the environment's cache of the libraries.

    Every bake's package has the same name, and mypy writes a module's meta and
    data files one after the other: two bakes checked at once in one cache left
    one bake's meta beside another's data (a `JobContext` without `progress`).
    The libraries' cache is 22 MB: a copy per bake costs a fraction of a second.
    """
    own = tmp_path / "mypy-cache"
    libraries = environments.mypy_cache_for(combination.python_version)
    if libraries.exists():
        shutil.copytree(libraries, own)
    return own


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
