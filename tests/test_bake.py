"""Every supported combination: bake, inspect, lint, type-check, test, and serve for real."""

from __future__ import annotations

import json
import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml

from hooks.post_gen_project import LICENSE_DIR, excluded_paths, included_paths
from tests.bakery import NO_SCHEMATHESIS_PLUGINS, package_name, project_env, run
from tests.combinations import PROMPTS, TEMPLATE, Combination, toggles

# "${{" is GitHub Actions' expression syntax, meant to reach the generated workflow.
JINJA_MARKERS = ("{{", "{%", "{#")
# A template variable left unrendered; `.cookiecutter.json` (the answers file) is no residue.
VARIABLE = re.compile(r"cookiecutter\.(?!json\b)\w+")
# The restart test's line in pytest's "-rap" summary.
RESTART_TEST = "PASSED tests/test_client_restart.py::test_through_a_restart_of_its_server_"
# One of the queue's worker-process tests, in the same summary.
WORKERS_TEST = "PASSED tests/test_task_queue.py::test_the_jobs_of_a_killed_worker_run_again"

ALWAYS_PRESENT = (
    "pyproject.toml",
    "README.md",
    ".env.example",
    ".gitignore",
    ".pre-commit-config.yaml",
    ".github/dependabot.yml",
    ".cookiecutter.json",
    "src/{package}/__init__.py",
    "src/{package}/__main__.py",
    "src/{package}/main.py",
    "src/{package}/settings.py",
    "src/{package}/deps.py",
    "src/{package}/readiness.py",
    "src/{package}/py.typed",
    "src/{package}/api/health.py",
    "tests/conftest.py",
    "tests/test_health.py",
)


def _files(project: Path) -> list[Path]:
    return sorted(p for p in project.rglob("*") if p.is_file())


def test_no_template_residue_in_any_path_or_file(project: Path) -> None:
    found = []
    for path in sorted(project.rglob("*")):
        relative = str(path.relative_to(project))
        if _residue(relative):
            found.append(f"path {relative}")
        if path.is_file():
            text = path.read_text(encoding="utf-8").replace("${{", "")
            found += [f"{relative}: {residue!r}" for residue in _residue(text)]
    assert found == []


def _residue(text: str) -> list[str]:
    return [marker for marker in JINJA_MARKERS if marker in text] + VARIABLE.findall(text)


def test_files_copied_without_rendering_arrive_as_written(project: Path, combination: Combination) -> None:
    # The demo page and realtime.js hold braces Jinja would read as its own.
    source = TEMPLATE / "{{cookiecutter.project_slug}}"
    package = combination.full_answers["package_name"]
    copied = [
        path
        for path in source.rglob("*")
        if path.is_file() and any(fnmatch(path.name, glob) for glob in PROMPTS["_copy_without_render"])
    ]
    assert {path.suffix for path in copied} == {".html", ".js"}
    for path in copied:
        baked = project / str(path.relative_to(source)).replace("{{cookiecutter.package_name}}", package)
        assert not baked.exists() or baked.read_bytes() == path.read_bytes(), baked


def test_no_empty_file_or_folder_is_left(project: Path) -> None:
    empty = [
        str(p.relative_to(project)) for p in project.rglob("*") if (p.is_file() and p.stat().st_size == 0)
    ]
    empty += [str(p.relative_to(project)) for p in project.rglob("*") if p.is_dir() and not any(p.iterdir())]
    assert empty == []


def test_each_option_keeps_its_files_and_drops_the_others(project: Path, combination: Combination) -> None:
    answers = combination.full_answers
    assert package_name(project) == answers["package_name"]
    missing = [p for p in (*included_paths(answers), *_always(answers)) if not (project / p).exists()]
    leftover = [p for p in excluded_paths(answers) if (project / p).exists()]
    assert missing == []
    assert leftover == []
    assert not (project / LICENSE_DIR).exists()
    assert (project / "LICENSE").exists() == (answers["license"] != "Proprietary")


def test_every_config_file_parses(project: Path, combination: Combination) -> None:
    for path in _files(project):
        if path.suffix == ".toml":
            tomllib.loads(path.read_text())
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix in (".yaml", ".yml"):
            yaml.safe_load(path.read_text())
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    version = combination.python_version
    assert pyproject["project"]["requires-python"] == f">={version}"
    assert pyproject["tool"]["mypy"]["python_version"] == version
    assert pyproject["tool"]["ruff"]["target-version"] == "py" + version.replace(".", "")
    dependencies = " ".join(pyproject["project"]["dependencies"])
    assert ("redis" in dependencies) == combination.answers["use_redis"]
    assert ("saq" in dependencies) == combination.answers["use_task_queue"]
    assert ("httpx" in dependencies) == combination.answers["use_lifespan"]
    # Development tools are a PEP 735 group, which `uv sync` installs by default, not an extra.
    # The one extra is `otel` (traces exported over OTLP), which the image leaves out.
    assert list(pyproject["project"]["optional-dependencies"]) == ["otel"]
    assert any(tool.startswith("pytest>=") for tool in pyproject["dependency-groups"]["dev"])
    answers = json.loads((project / ".cookiecutter.json").read_text())["cookiecutter"]
    assert {k: answers[k] for k in combination.answers} == combination.answers


def test_ruff_lint_and_format_pass(project: Path, python: Path) -> None:
    run([python, "-m", "ruff", "check", "--no-cache", "."], project)
    run([python, "-m", "ruff", "format", "--check", "--no-cache", "."], project)


# Against the environment's cache of the libraries (tests/environments.py):
# mypy reads every module of the bake itself.
def test_mypy_strict_passes(project: Path, python: Path, mypy_cache: Path) -> None:
    run([python, "-m", "mypy", "--cache-dir", mypy_cache], project, env=project_env(project))


# The `--no-input` bake's suite runs the README's way, through uv, in
# test_ecosystem.py (test_the_readme_uv_commands_set_up_and_test_the_default_bake).
# That run includes the browser tests; the demo page, realtime.js and their
# routes are the same files, unrendered, in every WebSocket bake, so the other
# bakes deselect them. All but one: the test that restarts a service process
# under the demo page needs Redis, which the default bake lacks; it runs in
# the bake with every option on (`restart` marks it).
@pytest.mark.long_running
@pytest.mark.default_bake(False)
def test_the_baked_projects_own_tests_pass(project: Path, python: Path, combination: Combination) -> None:
    env = {k: v for k, v in project_env(project).items() if not k.startswith(("PYTEST_", "COV_"))}
    # "-rap": the summary the project asks for (-ra), and each passed test, so that
    # what must run is seen to have run.
    command: list[str | Path] = [python, "-m", "pytest", "-q", "-rap", "-p", "no:cacheprovider"]
    command += NO_SCHEMATHESIS_PLUGINS
    every_option = all(combination.answers[toggle] for toggle in toggles())
    deselected = []
    if combination.answers["use_websockets"]:  # the bakes that declare the marker
        deselected.append("not browser or restart" if every_option else "not browser")
    # The queue's worker-process tests (kills, retries, stops, schedules: about 40 s of
    # waiting) drive the same worker code with and without background tasks, which
    # only add the notification job and its routes (tested in test_queued_notifications):
    # they run in the queue bakes with background tasks, with and without WebSockets.
    if combination.answers["use_task_queue"] and not combination.answers["use_background_tasks"]:
        deselected.append("not workers")
    if deselected:
        command += ["-m", " and ".join(f"({expression})" for expression in deselected)]
    output = run(command, project, env=env, timeout=600)
    if every_option:
        assert RESTART_TEST in output, output
    if combination.answers["use_task_queue"] and combination.answers["use_background_tasks"]:
        assert WORKERS_TEST in output, output


def _always(answers: dict[str, Any]) -> list[str]:
    return [p.format(package=answers["package_name"]) for p in ALWAYS_PRESENT]
