"""Shape the baked project to the answers, then print the next steps.

Every file in the template is rendered; this hook removes what the answers
exclude, driven by MANIFEST (data, one place). It runs nothing that needs
the network: no git, no installs.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Which toggle owns which paths (relative to the project, "{package}" standing
# for the package folder). A bake keeps a path only when every toggle that
# lists it is on (the Redis backend of the hub needs both use_websockets and
# use_redis), and every "not <toggle>" that lists it is off (the in-process
# job runner goes when jobs run on the task queue). A folder listed here goes
# as a whole.
MANIFEST: dict[str, tuple[str, ...]] = {
    "use_lifespan": (
        "src/{package}/lifespan.py",
        "tests/test_lifespan.py",
    ),
    "use_background_tasks": (
        "src/{package}/jobs.py",
        "src/{package}/api/notifications.py",
        "tests/test_jobs.py",
        "tests/test_notifications.py",
        "tests/test_ws_notifications.py",
        # Listed under use_task_queue too: the notification job on the queue.
        "src/{package}/api/queued_notifications.py",
        "src/{package}/tasks/notifications.py",
        "tests/test_queued_notifications.py",
    ),
    "use_websockets": (
        "src/{package}/broadcast",
        "src/{package}/realtime",
        "src/{package}/metrics/websocket.py",
        "src/{package}/metrics/broadcast.py",
        "src/{package}/api/browser_client.py",
        "src/{package}/api/demo.py",
        "src/{package}/api/history.py",
        "src/{package}/api/messages.py",
        "src/{package}/api/origins.py",
        "src/{package}/api/ws.py",
        "src/{package}/static",
        "tests/browser.py",
        "tests/live.py",
        "tests/test_broadcast.py",
        "tests/test_broadcast_tracing.py",
        "tests/test_browser_client.py",
        "tests/test_demo.py",
        "tests/test_http_auth.py",
        "tests/test_history.py",
        "tests/test_hub.py",
        "tests/test_messages.py",
        "tests/test_protocol.py",
        "tests/test_ws.py",
        "tests/test_ws_auth.py",
        "tests/test_ws_notifications.py",
        "tests/test_ws_resilience.py",
        "tests/test_ws_metrics.py",
        "tests/test_metrics_workers.py",
        # Listed under use_redis too: kept only when both are on.
        "src/{package}/broadcast/redis.py",
        "src/{package}/broadcast/redis_history.py",
        "src/{package}/broadcast/selection.py",
        "tests/services.py",
        "tests/test_client_restart.py",
        "tests/test_redis_backend.py",
        "tests/test_redis_broadcast.py",
        "tests/test_redis_history.py",
        "tests/test_redis_metrics.py",
        # Listed under use_task_queue too.
        "src/{package}/tasks/progress.py",
        "tests/test_job_progress.py",
    ),
    "use_redis": (
        "src/{package}/redis_client.py",
        "src/{package}/api/counters.py",
        "src/{package}/broadcast/redis.py",
        "src/{package}/broadcast/redis_history.py",
        "src/{package}/broadcast/selection.py",
        "tests/redis_server.py",
        "tests/test_client_restart.py",
        "tests/test_redis_client.py",
        "tests/test_redis_backend.py",
        "tests/services.py",
        "tests/test_redis_broadcast.py",
        "tests/test_redis_history.py",
        "tests/test_redis_metrics.py",
        "tests/test_redis_service.py",
        "tests/test_redis_logs.py",
    ),
    "use_task_queue": (
        "src/{package}/tasks",
        "src/{package}/api/jobs.py",
        "src/{package}/api/queued_notifications.py",
        "src/{package}/tasks/notifications.py",
        "tests/worker_jobs.py",
        "tests/workers.py",
        "tests/test_task_queue.py",
        "tests/test_job_metrics.py",
        "tests/test_queued_notifications.py",
        # Kept only with websockets too: progress is published to channels.
        "src/{package}/tasks/progress.py",
        "tests/test_job_progress.py",
    ),
    # With jobs on the queue, the in-process runner and its tests go.
    "not use_task_queue": (
        "src/{package}/jobs.py",
        "src/{package}/api/notifications.py",
        "tests/test_jobs.py",
        "tests/test_notifications.py",
        "tests/test_ws_notifications.py",
    ),
}

# Licence texts ship in this folder; the chosen one becomes LICENSE.
LICENSE_DIR = "_licenses"
LICENSE_FILES: dict[str, str | None] = {
    "MIT": "MIT.txt",
    "Apache-2.0": "Apache-2.0.txt",
    "BSD-3-Clause": "BSD-3-Clause.txt",
    "Proprietary": None,
}


def owners() -> dict[str, list[str]]:
    """Each manifest path and the conditions ("<toggle>" or "not <toggle>") that must all hold to keep it."""
    owned: dict[str, list[str]] = {}
    for toggle, paths in MANIFEST.items():
        for path in paths:
            owned.setdefault(path, []).append(toggle)
    return owned


def _kept(answers: Mapping[str, Any], keep: bool) -> list[str]:
    package = answers["package_name"]
    return [
        path.format(package=package)
        for path, toggles in owners().items()
        if all(_holds(answers, condition) for condition in toggles) == keep
    ]


def _holds(answers: Mapping[str, Any], condition: str) -> bool:
    toggle = condition.removeprefix("not ")
    return bool(answers[toggle]) != (toggle != condition)


def excluded_paths(answers: Mapping[str, Any]) -> list[str]:
    """Project-relative paths the answers exclude, in manifest order."""
    return _kept(answers, keep=False)


def included_paths(answers: Mapping[str, Any]) -> list[str]:
    """Project-relative paths the answers keep, in manifest order."""
    return _kept(answers, keep=True)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _remove_empty_folders(root: Path) -> None:
    # Deepest first, so a folder emptied by removing its children goes too.
    for folder in sorted(
        (p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
    ):
        if not any(folder.iterdir()):
            folder.rmdir()


def apply_manifest(project: Path, answers: Mapping[str, Any]) -> None:
    """Remove the files the answers exclude and place the chosen licence."""
    for relative in excluded_paths(answers):
        _remove(project / relative)
    licence = LICENSE_FILES[answers["license"]]
    if licence is not None:
        shutil.move(project / LICENSE_DIR / licence, project / "LICENSE")
    _remove(project / LICENSE_DIR)
    _remove_empty_folders(project)


def next_steps(answers: Mapping[str, Any]) -> str:
    slug = answers["project_slug"]
    return "\n".join(
        [
            f"Created {slug}. Next:",
            f"  cd {slug}",
            "  uv sync && uv run python -m " + answers["package_name"] + "   # set up and run",
            "  uv run pytest                                  # test",
            "Commit the uv.lock that `uv sync` writes: CI and the Docker image install it.",
            "See README.md for the pip way and the settings.",
        ]
    )


def main(answers: Mapping[str, Any]) -> int:
    apply_manifest(Path.cwd(), answers)
    print(next_steps(answers))
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(r"""{{ cookiecutter | tojson }}""")))
