"""The hooks: hostile answers refused with one clear line, awkward ones baked, the manifest sound."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from cookiecutter.cli import main as cookiecutter_main

from hooks.post_gen_project import LICENSE_DIR, LICENSE_FILES, MANIFEST
from hooks.pre_gen_project import RESERVED_PACKAGES, TEMPLATE_SETTINGS, TOGGLES, InvalidAnswer, validate
from tests.bakery import bake, project_env, run
from tests.combinations import PROMPTS, TEMPLATE, Combination, choices, default_answers, toggles, unsupported
from tests.environments import running_version
from tests.shared import shared_mypy_cache

PROJECT_TEMPLATE = TEMPLATE / "{{cookiecutter.project_slug}}"


def cookiecutter_cli(output_dir: Path, *answers: str) -> subprocess.CompletedProcess[str]:
    """Bake with the real command line, as a user would, answers as key=value."""
    return subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), "-o", str(output_dir), *answers],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def cookiecutter_command(
    output_dir: Path, capfd: pytest.CaptureFixture[str], *answers: str
) -> tuple[int, str, str]:
    """The same command line, parsed and run by cookiecutter's own `main` in this process.

    Dozens of refusals through a fresh interpreter each would cost more than
    the rest of the hook tests; the hook itself still runs as its own process,
    as it does for a user. Returns the exit status, cookiecutter's own output,
    and what the hook printed on stderr.
    """
    result = CliRunner().invoke(
        cookiecutter_main, ["--no-input", str(TEMPLATE), "-o", str(output_dir), *answers]
    )
    # What escapes cookiecutter's main reaches a user as a traceback ending in this.
    output = result.output + (f"{result.exception!r}" if result.exception else "")
    return result.exit_code, output, capfd.readouterr().err


HOSTILE = {
    "slug-with-spaces": ("project_slug", "My Service"),
    "slug-uppercase": ("project_slug", "MyService"),
    "slug-parent-dir": ("project_slug", "../evil"),
    "slug-separator": ("project_slug", "a/b"),
    "slug-leading-dot": ("project_slug", ".hidden"),
    "slug-empty": ("project_slug", ""),
    "slug-overlong": ("project_slug", "a" * 41),
    "slug-leading-hyphen": ("project_slug", "-service"),
    "slug-underscore": ("project_slug", "my_service"),
    "package-keyword": ("package_name", "class"),
    "package-stdlib": ("package_name", "json"),
    "package-stdlib-os": ("package_name", "os"),
    "package-dependency": ("package_name", "fastapi"),
    "package-hyphen": ("package_name", "my-package"),
    "package-leading-digit": ("package_name", "1package"),
    "package-uppercase": ("package_name", "MyPackage"),
    "package-empty": ("package_name", ""),
    "package-overlong": ("package_name", "p" * 33),
    "name-empty": ("project_name", ""),
    "name-blank": ("project_name", "   "),
    "name-separator": ("project_name", "a/b"),
    "name-parent-dir": ("project_name", "x..y"),
    "name-leading-dot": ("project_name", ".service"),
    "name-overlong": ("project_name", "n" * 61),
    "name-overlong-once-escaped": ("project_name", "q" + '"' * 30),
    "name-control-char": ("project_name", "bell\x07service"),
    "name-tab": ("project_name", "tab\tservice"),
    "description-overlong": ("description", "d" * 201),
    "description-escape-sequence": ("description", "red \x1b[31m text"),
    "description-empty": ("description", ""),
    "author-empty": ("author_name", ""),
    "author-separator": ("author_name", "a/b"),
    "email-no-at": ("author_email", "not-an-email"),
    "email-no-domain": ("author_email", "jane@"),
    "python-not-offered": ("python_version", "3.10"),
    "license-not-offered": ("license", "GPL-3.0"),
    "toggle-not-boolean": ("use_redis", "maybe"),
}


# Choices and booleans are checked by cookiecutter itself, before the hook,
# with a message naming the prompt.
REFUSED_BY_COOKIECUTTER = {*choices(), *toggles()}


@pytest.mark.parametrize(("prompt", "value"), list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_hostile_answer_is_refused_naming_the_prompt_and_nothing_is_written(
    prompt: str, value: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    status, output, hook_errors = cookiecutter_command(tmp_path, capfd, f"{prompt}={value}")
    assert status != 0
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    if (prompt, value) == ("project_slug", ""):
        # An empty slug names the output folder itself: cookiecutter refuses it
        # before any hook runs, without naming the prompt.
        assert "already exists" in output
        return
    if prompt in REFUSED_BY_COOKIECUTTER:
        assert hook_errors == ""
        assert prompt in output
        return
    [line] = hook_errors.splitlines()
    assert line.startswith(f"ERROR: {prompt}: "), line
    if "/" not in value:
        assert list(tmp_path.iterdir()) == []
    # A slug with "/" makes cookiecutter create the parent folder before the hook
    # runs; cookiecutter removes only the project folder itself on rejection.


def test_the_command_line_refuses_a_hostile_answer_in_one_line_and_exits_non_zero(tmp_path: Path) -> None:
    # Once through a real process, as a user runs it: exit status and streams.
    result = cookiecutter_cli(tmp_path, "package_name=class")
    assert result.returncode != 0
    [line] = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert "package_name" in line
    assert list(tmp_path.iterdir()) == []


def test_template_syntax_in_an_answer_is_refused() -> None:
    # Cookiecutter renders answers given on the command line (in Jinja's sandbox,
    # tests/test_answers_sandbox.py), so this reaches the hook only when typed at
    # a prompt or read from a replay file: test the rule itself.
    answers = {**default_answers(), "project_name": "{" + "{ 7 * 7 }" + "}"}
    with pytest.raises(InvalidAnswer, match="project_name: must not contain template syntax"):
        validate(answers)


# An import statement's top-level package, in a template file Jinja has not rendered yet.
IMPORT = re.compile(r"^\s*(?:import (\w+)(?:[ .,]|$)|from (\w+)(?:\.\w+)* import )")


def test_every_package_the_project_imports_is_refused_as_its_package_name() -> None:
    """src/ comes first on the path: a package named like one the generated code imports
    shadows it, and the bake fails at its first import (`prometheus_client` did)."""
    imported = set()
    for path in PROJECT_TEMPLATE.rglob("*.py"):
        for line in path.read_text(encoding="utf-8").splitlines():
            found = IMPORT.match(line)
            if found:
                imported.add(found[1] or found[2])
    assert "fastapi" in imported
    assert imported - set(sys.stdlib_module_names) - RESERVED_PACKAGES == set()


def test_the_default_answers_are_valid() -> None:
    validate(default_answers())


@pytest.mark.parametrize("refused", unsupported(), ids=lambda c: c.id)
def test_an_unsupported_combination_is_refused_naming_both_options(
    refused: Combination, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    answers = [f"{k}={'true' if v else 'false'}" for k, v in refused.answers.items()]
    status, _, hook_errors = cookiecutter_command(tmp_path, capfd, *answers)
    assert status != 0
    [line] = hook_errors.splitlines()
    assert line.startswith("ERROR: ")
    # The option asked for and the one it needs.
    named = set(re.findall(r"\buse_\w+", line))
    assert len(named) == 2
    assert named <= set(toggles())
    assert list(tmp_path.iterdir()) == []


AWKWARD = {
    "project_name": 'Café "Quoted" O\'Brien \\ Ünïcødé 🚀',
    "description": 'Says "hi", it\'s <b>bold</b> \\n not a newline, """triple""", émojis 🎉, # hash * star',
    "author_name": 'Zoë O\'Brien-Łukasz \\ "Ed"',
    "author_email": "zoë@exämple.org",
}


# Every option on, so that every file meets the longest names.
LONGEST = {
    "project_name": "N" * 58 + '"',
    "project_slug": "s" * 40,
    "package_name": "p" * 32,
    "use_redis": True,
    "use_task_queue": True,
}


def test_the_longest_accepted_names_bake_within_the_line_length(tmp_path: Path) -> None:
    project = bake(LONGEST, tmp_path)
    run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], project)
    run([sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."], project)


@pytest.fixture(scope="module")
def awkward_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bake(AWKWARD, tmp_path_factory.mktemp("awkward"))


def test_awkward_but_valid_answers_bake_into_valid_files(awkward_project: Path) -> None:
    pyproject = tomllib.loads((awkward_project / "pyproject.toml").read_text())
    assert pyproject["project"]["description"] == AWKWARD["description"]
    assert pyproject["project"]["authors"] == [
        {"name": AWKWARD["author_name"], "email": AWKWARD["author_email"]}
    ]
    for source in awkward_project.rglob("*.py"):
        ast.parse(source.read_text(), filename=str(source))
    answers = json.loads((awkward_project / ".cookiecutter.json").read_text())["cookiecutter"]
    assert answers["project_name"] == AWKWARD["project_name"]
    assert "O'Brien \\\\ Ünïcødé" in (awkward_project / "README.md").read_text()


def test_awkward_answers_reach_the_running_code_unchanged(awkward_project: Path) -> None:
    package = next(p.name for p in (awkward_project / "src").iterdir())
    code = f"from {package}.settings import Settings; print(Settings(_env_file=None).app_name)"
    output = run([sys.executable, "-c", code], awkward_project, env=project_env(awkward_project))
    assert output.strip() == AWKWARD["project_name"]


def test_awkward_bake_passes_lint_and_types(
    awkward_project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], awkward_project)
    run([sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."], awkward_project)
    env = project_env(awkward_project)
    with shared_mypy_cache(tmp_path_factory, running_version()) as cache:
        run([sys.executable, "-m", "mypy", "--cache-dir", cache], awkward_project, env=env)


def test_every_manifest_path_exists_in_the_template() -> None:
    missing = [
        path
        for paths in MANIFEST.values()
        for path in paths
        if not (PROJECT_TEMPLATE / path.format(package="{{cookiecutter.package_name}}")).exists()
    ]
    assert missing == []
    for licence in filter(None, LICENSE_FILES.values()):
        assert (PROJECT_TEMPLATE / LICENSE_DIR / licence).is_file()


def test_the_hook_knows_every_template_setting_in_cookiecutter_json() -> None:
    settings = {name: value for name, value in PROMPTS.items() if name.startswith("_") and name[1] != "_"}
    assert settings == TEMPLATE_SETTINGS


def test_the_manifest_and_the_hook_know_every_toggle_in_cookiecutter_json() -> None:
    # A key is a toggle, or "not <toggle>" for the paths its being off keeps.
    assert {key.removeprefix("not ") for key in MANIFEST} == set(toggles())
    assert set(TOGGLES) == set(toggles())
