"""The bake among the tools around it: Docker, Compose, GitHub Actions, pre-commit, cruft, uv and pip.

Docker and GitHub Actions do not run here, so their files are checked the way
those tools read them (schemas, hadolint, the Dockerfile's own instructions
executed without Docker); pre-commit, cruft, uv and pip run for real.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.bakery import NO_SCHEMATHESIS_PLUGINS, package_name, run
from tests.combinations import TEMPLATE, Combination, default_answers, supported, toggles
from tests.conftest import selected
from tests.ecosystem_checks import (
    code_snippets,
    commands,
    dockerfile_instructions,
    dockerignore_rules,
    env_assignments,
    exec_form,
    in_build_context,
    run_command,
    stages,
    validate_with_builtin_schema,
    workflow_run_lines,
)
from tests.environments import python_for
from tests.servers import free_port, stop_with_sigterm, wait_until_serving
from tests.shared import baked, shared_mypy_cache

TOOLS = Path(sys.executable).parent
WORKFLOW = ".github/workflows/ci.yml"


def _edge_combinations() -> list[Combination]:
    """Every option on, and every option off: the two bakes the slow checks run on."""
    names = toggles()
    return [c for c in supported() if len({c.answers[name] for name in names}) == 1]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # `edge` runs on the all-on and all-off combinations only.
    if "edge" in metafunc.fixturenames:
        wanted = {c.id for c in selected(metafunc.config)}
        metafunc.parametrize(
            "edge", [pytest.param(c, id=c.id) for c in _edge_combinations() if c.id in wanted]
        )


@pytest.fixture
def edge_project(tmp_path_factory: pytest.TempPathFactory, edge: Combination) -> Path:
    return baked(tmp_path_factory, edge)


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what would leak the suite into a child tool."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "COV_"))
        and key not in ("VIRTUAL_ENV", "PYTHONPATH", "UV_PROJECT_ENVIRONMENT")
    }
    env.update(extra)
    return env


def _copy_bake(project: Path, destination: Path) -> Path:
    """A copy of a shared bake that a test may change (git init, caches, venvs)."""
    return Path(shutil.copytree(project, destination / project.name))


# --- Dockerfile -------------------------------------------------------------


def test_the_dockerfile_passes_hadolint(project: Path) -> None:
    run([TOOLS / "hadolint", "--no-color", "Dockerfile"], project)


def test_the_dockerfile_builds_in_stages_and_runs_unprivileged_with_a_health_check(
    project: Path, combination: Combination
) -> None:
    instructions = dockerfile_instructions((project / "Dockerfile").read_text())
    built = stages(instructions)
    assert len(built) >= 2
    for stage in built:
        assert stage[0].arguments.split()[0] == f"python:{combination.python_version}-slim"
    runtime = built[-1]
    assert any(i.keyword == "COPY" and i.arguments.startswith("--from=") for i in runtime)
    [user] = [i.arguments for i in runtime if i.keyword == "USER"]
    assert user.split(":")[0] not in ("root", "0")
    [healthcheck] = [exec_form(i.arguments) for i in runtime if i.keyword == "HEALTHCHECK"]
    assert "/health" in " ".join(healthcheck)
    [command] = [exec_form(i.arguments) for i in runtime if i.keyword == "CMD"]
    # `python -m <package>` reads the settings (WS frame limit, graceful
    # shutdown, workers) that a bare uvicorn command line would miss.
    assert command == ["python", "-m", package_name(project)]
    assert env_assignments(runtime)["HOST"] == "0.0.0.0"


def test_the_docker_build_context_holds_what_the_build_needs_and_no_secrets(project: Path) -> None:
    rules = dockerignore_rules((project / ".dockerignore").read_text())
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    needed = ["pyproject.toml", "uv.lock", pyproject["readme"], *pyproject.get("license-files", [])]
    needed += [str(p.relative_to(project)) for p in (project / "src").rglob("*") if p.is_file()]
    assert [path for path in needed if not in_build_context(path, rules)] == []
    private = [
        ".env",
        ".venv/bin/python",
        ".git/config",
        "tests/conftest.py",
        "src/pkg/__pycache__/main.cpython.pyc",
    ]
    assert [path for path in private if in_build_context(path, rules)] == []


def test_the_image_installs_the_lock_with_a_pinned_uv_dependencies_before_source(project: Path) -> None:
    """uv's Docker guidance: its image pinned, uv.lock enforced, dependencies a layer before the source.

    The uv pinned here is the one both workflows install: one uv resolves
    the lock everywhere.
    """
    build, runtime = stages(dockerfile_instructions((project / "Dockerfile").read_text()))
    [uv_image] = [i.arguments for i in build if i.keyword == "COPY" and "astral-sh/uv" in i.arguments]
    assert uv_image == f"--from=ghcr.io/astral-sh/uv:{_ci_uv_version(project)} /uv /uvx /bin/"
    env = env_assignments(build)
    assert (env["UV_COMPILE_BYTECODE"], env["UV_PYTHON_DOWNLOADS"]) == ("1", "0")
    copies = [i for i in build if i.keyword == "COPY" and not i.arguments.startswith("--from=")]
    syncs = [i for i in build if i.keyword == "RUN" and run_command(i.arguments).startswith("uv sync")]
    # Only the manifest and the lock before the dependencies' layer; the source after it.
    assert [c.arguments for c in copies] == ["pyproject.toml uv.lock* ./", ". ."]
    assert len(syncs) == 2
    assert [i for i in build if i in copies or i in syncs] == [copies[0], syncs[0], copies[1], syncs[1]]
    for sync in syncs:
        assert sync.arguments.startswith("--mount=type=cache,target=/root/.cache/uv ")
        assert {"--locked", "--no-dev"} <= set(run_command(sync.arguments).split())
    assert "--no-install-project" in syncs[0].arguments.split()
    assert "--no-editable" in syncs[1].arguments.split()
    venv = env["UV_PROJECT_ENVIRONMENT"]
    assert f"--from=build {venv} {venv}" in [i.arguments for i in runtime if i.keyword == "COPY"]


def _ci_uv_version(project: Path) -> str:
    """The one uv version every setup-uv step of both workflows installs."""
    workflows = [yaml.safe_load(text) for text in _workflow_texts(project).values()]
    [version] = {
        step["with"]["version"]
        for workflow in workflows
        for job in workflow["jobs"].values()
        for step in job["steps"]
        if step.get("uses", "").startswith("astral-sh/setup-uv@")
    }
    assert isinstance(version, str)
    return version


def test_the_image_build_cmd_and_healthcheck_work_when_run_without_docker(
    edge_project: Path, edge: Combination, tmp_path: Path
) -> None:
    """The build stage's RUN lines, then the runtime stage's CMD and HEALTHCHECK, executed on this machine.

    The build context is what .dockerignore lets through. Without uv.lock the
    build stops at its first RUN, saying how to make one; after `uv lock` (as
    the message says; it may reach PyPI past uv's cache) every RUN passes,
    into a venv in place of /opt/venv, from this machine's Python in place of
    the image's. HOST stays on loopback here: the Dockerfile's 0.0.0.0 is
    checked above.
    """
    rules = dockerignore_rules((edge_project / ".dockerignore").read_text())
    context = tmp_path / "context"
    for path in sorted(edge_project.rglob("*")):
        relative = str(path.relative_to(edge_project))
        if path.is_file() and in_build_context(relative, rules):
            (context / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, context / relative)
    assert in_build_context("uv.lock", rules)
    build = stages(dockerfile_instructions((edge_project / "Dockerfile").read_text()))[0]
    venv = tmp_path / "venv"
    build_env = _clean_env(
        **env_assignments(build)
        | {"UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON": str(python_for(edge.python_version))}
    )
    steps = [run_command(i.arguments) for i in build if i.keyword == "RUN"]

    def build_step(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", "-e", "-c", command],
            cwd=context,
            env=build_env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    refused = build_step(steps[0])
    assert refused.returncode == 1
    assert "'uv lock'" in refused.stderr
    assert refused.stderr.strip().count("\n") == 0, refused.stderr
    run(["uv", "lock", "--quiet"], context, env=build_env)
    for step in steps:
        done = build_step(step)
        assert done.returncode == 0, f"{step}:\n{done.stdout}{done.stderr}"
    # Compiled at build time: the runtime user cannot write next to the modules.
    assert list((venv / "lib").glob(f"python*/site-packages/{package_name(edge_project)}/__pycache__/*.pyc"))

    runtime = stages(dockerfile_instructions((edge_project / "Dockerfile").read_text()))[-1]
    [command] = [exec_form(i.arguments) for i in runtime if i.keyword == "CMD"]
    [healthcheck] = [exec_form(i.arguments) for i in runtime if i.keyword == "HEALTHCHECK"]
    port = free_port()
    image_env = env_assignments(runtime) | {"HOST": "127.0.0.1", "PORT": str(port)}
    image_env["PATH"] = f"{venv / 'bin'}:{os.environ['PATH']}"
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    # The image runs in production: without a key it must refuse to start, in one line.
    assert image_env["ENVIRONMENT"] == "production"
    refused = subprocess.run(
        command,
        cwd=workdir,
        env=_clean_env(**image_env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode != 0
    assert refused.stderr.strip().count("\n") == 0, refused.stderr
    assert "AUTH_SECRET" in refused.stderr
    assert "Traceback" not in refused.stderr
    # The hosts the README's "Behind a proxy" has production trust, the HEALTHCHECK's own included.
    env = _clean_env(**image_env, AUTH_SECRET="s" * 32, TRUSTED_HOSTS="rt.example.com,127.0.0.1")
    process = subprocess.Popen(
        command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_until_serving(process, f"http://127.0.0.1:{port}/health")
        healthy = subprocess.run(
            healthcheck, cwd=workdir, env=env, capture_output=True, timeout=30, check=False
        )
        elsewhere = httpx.get(f"http://127.0.0.1:{port}/health", headers={"host": "elsewhere.example"})
    finally:
        output = stop_with_sigterm(process)
    assert healthy.returncode == 0, healthy.stderr
    assert elsewhere.status_code == 400
    assert "Application shutdown complete" in output
    stopped = subprocess.run(healthcheck, cwd=workdir, env=env, capture_output=True, timeout=30, check=False)
    assert stopped.returncode != 0


# --- Compose ----------------------------------------------------------------


def test_compose_follows_the_compose_spec_with_redis_exactly_when_chosen(
    project: Path, combination: Combination
) -> None:
    status, output = validate_with_builtin_schema("vendor.compose-spec", str(project / "compose.yaml"))
    assert status == 0, output
    services = yaml.safe_load((project / "compose.yaml").read_text())["services"]
    assert services["app"]["build"] == "."
    # Production, and no start without a key: compose itself stops when AUTH_SECRET is unset.
    assert services["app"]["environment"]["ENVIRONMENT"] == "production"
    assert services["app"]["environment"]["AUTH_SECRET"].startswith("${AUTH_SECRET:?")
    if combination.answers["use_redis"]:
        redis = services["redis"]
        assert redis["image"] == "redis:7-alpine"
        assert "redis-cli" in redis["healthcheck"]["test"]
        assert services["app"]["depends_on"] == {"redis": {"condition": "service_healthy"}}
        assert services["app"]["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    else:
        assert set(services) == {"app"}
        assert "REDIS_URL" not in services["app"].get("environment", {})
    assert ("worker" in services) == combination.answers["use_task_queue"]
    if combination.answers["use_task_queue"]:
        worker = services["worker"]
        package = package_name(project)
        # The same image and settings as the app, another command, its own health check.
        assert worker["build"] == services["app"]["build"]
        assert worker["command"] == ["python", "-m", package, "worker"]
        assert worker["healthcheck"]["test"] == ["CMD", "python", "-m", package, "worker", "--check"]
        assert worker["environment"] == services["app"]["environment"]
        assert worker["depends_on"] == services["app"]["depends_on"]
        # Queued jobs outlive a Redis restart, and are never evicted.
        command = " ".join(services["redis"]["command"])
        assert "--appendonly yes --appendfsync always" in command
        assert "--maxmemory-policy noeviction" in command
        assert services["redis"]["volumes"] == ["redis-data:/data"]


def test_compose_and_ci_set_only_settings_the_app_documents(project: Path) -> None:
    """A variable that .env.example does not list is one the app would silently ignore."""
    documented = {
        line.split("=", 1)[0]
        for line in (project / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    services = yaml.safe_load((project / "compose.yaml").read_text())["services"]
    jobs = yaml.safe_load((project / WORKFLOW).read_text())["jobs"].values()
    set_by_ci = {name for job in jobs for step in job["steps"] for name in step.get("env", {})}
    for name in ("app", "worker"):
        assert set(services.get(name, {}).get("environment", {})) - documented == set()
    assert set_by_ci - documented == set()


# --- The generated workflow -------------------------------------------------


def test_the_generated_workflow_is_a_valid_github_workflow_for_the_chosen_options(
    project: Path, combination: Combination
) -> None:
    for schema in ("vendor.github-workflows", "custom.github-workflows-require-timeout"):
        status, output = validate_with_builtin_schema(schema, str(project / WORKFLOW))
        assert status == 0, output
    jobs = yaml.safe_load((project / WORKFLOW).read_text())["jobs"]
    assert set(jobs) == {"check", "lowest"}
    for job in jobs.values():
        assert job["container"] == f"python:{combination.python_version}-bookworm"
        installs = " ".join(
            line for line in workflow_run_lines({"jobs": {"job": job}}) if "apt-get install" in line
        )
        assert ("redis-server" in installs) == combination.answers["use_redis"]
        assert ("chromium" in installs) == combination.answers["use_websockets"]
        assert ("redis" in job.get("services", {})) == combination.answers["use_redis"]
        [tests] = [step for step in job["steps"] if step.get("run") == "uv run pytest"]
        assert ("REDIS_URL" in tests.get("env", {})) == combination.answers["use_redis"]


def test_the_generated_workflow_runs_the_same_checks_on_the_lock_and_on_the_lowest_versions(
    project: Path,
) -> None:
    """`check` installs exactly uv.lock; `lowest` the floors, and keeps them for every later uv command."""
    jobs = yaml.safe_load((project / WORKFLOW).read_text())["jobs"]
    syncs = {
        name: [step["run"] for step in job["steps"] if step.get("run", "").startswith("uv sync")]
        for name, job in jobs.items()
    }
    assert syncs == {"check": ["uv sync --locked"], "lowest": ["uv sync --resolution lowest-direct"]}
    # A plain `uv run` would re-lock to the newest versions before running.
    assert jobs["lowest"]["env"] == {"UV_RESOLUTION": "lowest-direct"}
    assert "env" not in jobs["check"]
    assert _without_sync(jobs["check"]) == _without_sync(jobs["lowest"])


def _without_sync(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for step in job["steps"] if not step.get("run", "").startswith("uv sync")]


# --- Pinned actions, locked installs, Dependabot ----------------------------

_PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")


def _workflow_texts(project: Path) -> dict[str, str]:
    paths = [project / WORKFLOW, *_template_workflows()]
    return {str(path): path.read_text() for path in paths}


def test_every_action_is_pinned_by_commit_with_its_version_and_reads_the_repository_only(
    project: Path,
) -> None:
    """Both workflows, the generated one and the template's: a tag can be moved, a commit cannot."""
    for path, text in _workflow_texts(project).items():
        uses = [line.split("uses:", 1)[1].strip() for line in text.splitlines() if "uses:" in line]
        assert uses != [], path
        assert [use for use in uses if not _PINNED.match(use)] == [], path
        assert yaml.safe_load(text)["permissions"] == {"contents": "read"}, path
        for job in yaml.safe_load(text)["jobs"].values():
            assert "permissions" not in job, path


def test_every_uv_sync_in_ci_installs_the_lock_but_the_lowest_versions_job(project: Path) -> None:
    synced = [
        (path, command)
        for path, text in _workflow_texts(project).items()
        for command in commands(workflow_run_lines(yaml.safe_load(text)))
        if command.startswith("uv sync")
    ]
    synced += [
        (name, command)
        for name in ("run", "lowest")
        for command in commands((TEMPLATE / ".ci" / name).read_text().splitlines())
        if command.startswith("uv sync")
    ]
    lowest = "uv sync --resolution lowest-direct"
    floors = {(str(project / WORKFLOW), lowest), ("lowest", lowest)}
    assert floors <= set(synced)
    unlocked = [(where, c) for where, c in synced if "--locked" not in c.split()]
    assert [entry for entry in unlocked if entry not in floors] == []


def test_the_dependabot_configs_follow_their_schema_and_cover_every_ecosystem(project: Path) -> None:
    generated = project / ".github" / "dependabot.yml"
    template = TEMPLATE / ".github" / "dependabot.yml"
    status, output = validate_with_builtin_schema("vendor.dependabot", str(generated), str(template))
    assert status == 0, output
    ecosystems = {generated: {"uv", "github-actions", "docker"}, template: {"uv", "github-actions"}}
    for path, wanted in ecosystems.items():
        updates = yaml.safe_load(path.read_text())["updates"]
        assert {update["package-ecosystem"] for update in updates} == wanted
        assert {update["directory"] for update in updates} == {"/"}


def test_the_generated_workflow_runs_the_readme_commands(project: Path, combination: Combination) -> None:
    workflow = yaml.safe_load((project / WORKFLOW).read_text())
    in_ci = {c for c in commands(workflow_run_lines(workflow)) if c.startswith("uv ")}
    in_readme = {
        c for c in commands(code_snippets((project / "README.md").read_text())) if c.startswith("uv ")
    }
    # Serving and installing the git hook are for a developer's machine only.
    local_only = {f"uv run python -m {package_name(project)}", "uv run pre-commit install"}
    if combination.answers["use_task_queue"]:
        local_only.add(f"uv run python -m {package_name(project)} worker")
    assert local_only <= in_readme
    # CI runs the README's `uv sync` bound to the lock or to the floors, both
    # named in the README too; `uv lock` is the README's advice for the image.
    assert in_ci | {"uv sync"} == in_readme - local_only - {"uv lock"}
    assert {"uv sync --locked", "uv sync --resolution lowest-direct", "uv run pytest", "uv run mypy"} <= in_ci


# --- pre-commit -------------------------------------------------------------


def test_pre_commit_passes_on_a_fresh_git_repository_of_the_bake(
    edge_project: Path, edge: Combination, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """As after the README's setup: the tools in the project's .venv, none on PATH, no network.

    The combination's environment stands in for the .venv that `uv sync`
    or the pip way would make; the hooks must find it without
    an activated virtualenv, as a plain `git commit` runs them.
    """
    repository = _copy_bake(edge_project, tmp_path)
    bare_path = ":".join(
        folder
        for folder in os.environ["PATH"].split(":")
        if not any((Path(folder) / tool).exists() for tool in ("ruff", "mypy"))
    )
    assert shutil.which("ruff", path=bare_path) is None
    with shared_mypy_cache(tmp_path_factory, edge.python_version) as mypy_cache:
        env = _clean_env(
            PATH=bare_path,
            PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"),
            # The run's mypy cache for this Python: the libraries are checked
            # once, the bake's own modules every time.
            MYPY_CACHE_DIR=str(mypy_cache),
            **_git_identity(tmp_path),
        )
        run(["git", "init", "--quiet"], repository, env=env)
        run(["git", "add", "--all"], repository, env=env)
        venv = python_for(edge.python_version).parent.parent
        (repository / ".venv").symlink_to(venv, target_is_directory=True)
        run(
            [TOOLS / "pre-commit", "run", "--all-files", "--show-diff-on-failure"],
            repository,
            env=env,
            timeout=300,
        )


def _git_identity(tmp_path: Path) -> dict[str, str]:
    """Git that reads no user or system configuration: same result on any machine."""
    config = tmp_path / "gitconfig"
    config.write_text(
        "[user]\n\tname = Template Suite\n\temail = suite@example.com\n[init]\n\tdefaultBranch = main\n"
    )
    return {"GIT_CONFIG_GLOBAL": str(config), "GIT_CONFIG_NOSYSTEM": "1"}


# --- cruft ------------------------------------------------------------------


def _template_copy(destination: Path) -> Path:
    """The template's files as git sees them (tracked or new, never ignored), in a repository of their own."""
    listed = run(
        [
            "git",
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "-z",
            "--",
            "cookiecutter.json",
            "local_extensions",
            "hooks",
            ":(literal){{cookiecutter.project_slug}}",
        ],
        TEMPLATE,
    )
    for relative in filter(None, listed.split("\0")):
        source = TEMPLATE / relative
        if source.is_file():
            (destination / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / relative)
    return destination


@pytest.mark.long_running
def test_cruft_update_brings_a_template_change_into_a_baked_project(tmp_path: Path) -> None:
    env = _clean_env(**_git_identity(tmp_path))
    template = _template_copy(tmp_path / "template")
    run(["git", "init", "--quiet"], template, env=env)
    run(["git", "add", "--all"], template, env=env)
    run(["git", "commit", "--quiet", "-m", "first"], template, env=env)

    run(
        [TOOLS / "cruft", "create", "--no-input", "--output-dir", tmp_path / "out", template],
        tmp_path,
        env=env,
    )
    [project] = (tmp_path / "out").iterdir()
    run(["git", "init", "--quiet"], project, env=env)
    run(["git", "add", "--all"], project, env=env)
    run(["git", "commit", "--quiet", "-m", "baked"], project, env=env)

    change = "# Added by the template after the project was baked.\n"
    with (template / "{{cookiecutter.project_slug}}" / ".editorconfig").open("a") as editorconfig:
        editorconfig.write(change)
    run(["git", "commit", "--quiet", "--all", "-m", "second"], template, env=env)
    head = run(["git", "rev-parse", "HEAD"], template, env=env).strip()

    run([TOOLS / "cruft", "update", "--skip-apply-ask"], project, env=env, timeout=120)
    assert (project / ".editorconfig").read_text().endswith(change)
    assert f'"commit": "{head}"' in (project / ".cruft.json").read_text()
    run([TOOLS / "cruft", "check"], project, env=env)

    # The answers file alone re-bakes the same project, template change included.
    rebaked = tmp_path / "rebaked"
    run(
        [
            TOOLS / "cookiecutter",
            "--replay-file",
            project / ".cookiecutter.json",
            "--output-dir",
            rebaked,
            template,
        ],
        tmp_path,
        env=env,
    )
    assert _tree(rebaked / project.name) == _tree(project) - {".cruft.json"}


def _tree(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


# --- The README's two commands, for real ------------------------------------


def _readme_commands(project: Path) -> list[str]:
    return commands(code_snippets((project / "README.md").read_text()))


@pytest.mark.long_running
@pytest.mark.default_bake(True)
def test_the_readme_uv_commands_set_up_and_test_the_default_bake(
    project: Path, combination: Combination
) -> None:
    """The `--no-input` bake's own suite, run the README's way: uv resolves, installs and runs it.

    This is that combination's run of its own tests (test_bake runs every
    other combination's in the suite's environments). Slow (15-40 s); uv may
    reach PyPI past its cache.
    """
    readme = _readme_commands(project)
    env = _clean_env(UV_PYTHON=str(python_for(combination.python_version)))
    for command in ("uv sync", "uv run pytest"):
        assert command in readme
        run(shlex.split(command), project, env=env, timeout=300)


@pytest.mark.long_running
@pytest.mark.default_bake(True)
def test_the_readme_pip_commands_set_up_and_test_the_default_bake(
    project: Path, combination: Combination
) -> None:
    """`python -m venv .venv`, the README's `pip install` by pip itself, then `pytest` in the activated venv.

    pip resolving and downloading every dependency from scratch takes most of
    a minute on 2 cores, so uv first puts the same requirements into the venv,
    as a warm download cache would; pip then checks them against the
    project's metadata, builds the project and installs it, as for a user.
    Those are the packages the uv route's whole-suite run used, so `pytest`
    here collects every test (each import resolves in pip's install) and runs
    the health tests against the project pip installed, not the suite again.
    """
    readme = _readme_commands(project)
    assert "python -m venv .venv" in readme
    assert ". .venv/bin/activate" in readme
    installs = [shlex.split(c) for c in readme if c.startswith("pip install")]
    # pip reads dependency groups (PEP 735) from 25.1 on; a new venv may bring an older one.
    assert installs == [
        ["pip", "install", "--upgrade", "pip>=25.1"],
        ["pip", "install", "-e", ".", "--group", "dev"],
    ]
    venv = project / ".venv"
    activated = _clean_env(VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}:{os.environ['PATH']}")
    run([python_for(combination.python_version), "-m", "venv", ".venv"], project)
    for install in installs:
        run(["uv", "pip", "install", "--quiet", *install[2:]], project, env=activated, timeout=300)
        pip = run([*install, "--disable-pip-version-check"], project, env=activated, timeout=600)
    assert f"Successfully installed {project.name}" in pip, pip
    # Every module is collected (imported); the health tests run.
    tested = run(["pytest", "-q", "-p", "no:cacheprovider", "-k", "test_health"], project, env=activated)
    assert re.search(r"\d+ passed, \d{2,} deselected", tested), tested


def test_ci_ends_with_the_test_command_the_template_readme_gives() -> None:
    """`.ci/run` installs, then runs exactly the suite a newcomer runs from the README."""
    readme = commands(code_snippets((TEMPLATE / "README.md").read_text()))
    script = commands((TEMPLATE / ".ci" / "run").read_text().splitlines())
    assert "pytest" in script[-1]
    assert script[-1] in readme


# --- The template's own workflows -------------------------------------------


def _template_workflows() -> list[Path]:
    return sorted((TEMPLATE / ".github" / "workflows").glob("*.y*ml"))


def _template_workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((TEMPLATE / WORKFLOW).read_text())
    return loaded


def test_the_template_workflows_are_valid_github_workflows() -> None:
    assert _template_workflows() != []
    for schema in ("vendor.github-workflows", "custom.github-workflows-require-timeout"):
        status, output = validate_with_builtin_schema(schema, *map(str, _template_workflows()))
        assert status == 0, output


def test_the_template_workflow_matrix_is_the_suites_combination_list(tmp_path: Path) -> None:
    [list_step] = [s for s in _template_workflow()["jobs"]["combinations"]["steps"] if s.get("id") == "list"]
    output = tmp_path / "github_output"
    env = _clean_env(GITHUB_OUTPUT=str(output), PATH=f"{TOOLS}:{os.environ['PATH']}")
    run(["bash", "-e", "-c", list_step["run"]], TEMPLATE, env=env)
    [line] = output.read_text().splitlines()
    key, _, value = line.partition("=")
    assert key == "matrix"
    assert json.loads(value) == {"include": [{"id": c.id, "python": c.python_version} for c in supported()]}


def test_the_template_lowest_job_proves_the_floors_on_the_fullest_bake() -> None:
    """Every option on: the bake that depends on the most, with .ci/lowest's lowest-direct install."""
    [step] = [s for s in _template_workflow()["jobs"]["lowest"]["steps"] if ".ci/lowest" in s.get("run", "")]
    words = shlex.split(step["run"])
    assert words[:2] == ["bash", ".ci/lowest"]
    answers = default_answers() | {
        name: value == "true" for name, value in (word.split("=", 1) for word in words[2:])
    }
    assert all(answers[name] is True for name in toggles())
    script = commands((TEMPLATE / ".ci" / "lowest").read_text().splitlines())
    assert "uv sync --resolution lowest-direct" in script
    assert 'export UV_RESOLUTION=lowest-direct UV_PYTHON="${UV_PYTHON:-$python_version}"' in script
    run(["bash", "-n", TEMPLATE / ".ci" / "lowest"], TEMPLATE)


def _collected(arguments: list[str]) -> set[str]:
    """The node ids pytest collects with `arguments`, in one process (no xdist)."""
    # Emptied addopts: their -v would turn the id list into a tree.
    command = [sys.executable, "-m", "pytest", "-o", "addopts=", "-p", "no:cacheprovider"]
    command += NO_SCHEMATHESIS_PLUGINS
    output = run([*command, *arguments, "--collect-only", "-q"], TEMPLATE, env=_clean_env(), timeout=120)
    return {line for line in output.splitlines() if "::" in line}


def test_the_per_combination_job_selects_exactly_that_combinations_tests() -> None:
    job = _template_workflow()["jobs"]["combination"]
    [step] = [s for s in job["steps"] if "pytest" in s.get("run", "")]
    assert step["env"]["COMBINATION"] == "${{ matrix.id }}"
    chosen = _edge_combinations()[0].id
    words = [word.replace("$COMBINATION", chosen) for word in shlex.split(step["run"])]
    assert words[:3] == ["uv", "run", "pytest"]
    selection = _collected(words[3:])
    everything = _collected(["--combination", chosen])
    assert selection == {test for test in everything if test.endswith(f"[{chosen}]")}
    assert len(selection) >= 10


# --- .editorconfig ----------------------------------------------------------


def test_every_file_follows_the_editorconfig_which_agrees_with_ruff(project: Path) -> None:
    parser = configparser.ConfigParser()
    # Its top-level `root = true` precedes any section, which INI does not allow.
    parser.read_string("[top]\n" + (project / ".editorconfig").read_text())
    assert parser["top"]["root"] == "true"
    everything = parser["*"]
    assert (everything["end_of_line"], everything["insert_final_newline"]) == ("lf", "true")
    assert everything["trim_trailing_whitespace"] == "true"
    ruff = tomllib.loads((project / "pyproject.toml").read_text())["tool"]["ruff"]
    assert int(parser["*.py"]["max_line_length"]) == ruff["line-length"]
    broken = []
    for path in sorted(p for p in project.rglob("*") if p.is_file()):
        text = path.read_bytes()
        relative = path.relative_to(project)
        if b"\r" in text:
            broken.append(f"{relative}: CR line ending")
        if not text.endswith(b"\n"):
            broken.append(f"{relative}: no final newline")
        trailing = [n for n, line in enumerate(text.split(b"\n"), 1) if line != line.rstrip(b" \t")]
        broken += [f"{relative}:{n}: trailing whitespace" for n in trailing]
    assert broken == []
