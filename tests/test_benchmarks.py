"""The benchmark harness runs end to end at toy sizes against the ceiling and the baked service.

No timing is asserted: only that every client received every message, that the report has
its structure, and that no process the harness started outlives it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
RUN = REPO / "benchmarks" / "run.py"


def processes_inside(folder: Path) -> list[int]:
    """Live processes whose working directory is under `folder` (the harness's servers run there)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if cwd == folder or folder in cwd.parents:
            found.append(int(entry.name))
    return found


@pytest.mark.long_running
def test_quick_benchmark_delivers_every_message_for_ceiling_and_baked_service(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    workdir = tmp_path / "work"
    done = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--scenario", "bursts,paced", "--variants", "ceiling,ours",
         "--json", str(report_path), "--workdir", str(workdir)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert processes_inside(workdir) == []

    report: dict[str, Any] = json.loads(report_path.read_text())
    assert report["meta"]["quick"] is True
    groups = report["groups"]
    assert [group["scenario"] for group in groups] == ["bursts", "paced"]
    for group in groups:
        assert group["reference"] == "ceiling"
        rows = {row["variant"]: row for row in group["rows"]}
        assert set(rows) == {"ceiling", "ours"}
        for variant, row in rows.items():
            assert row["errors"] == [], (variant, row["errors"])
            (run,) = row["runs"]
            assert run["expected"] == group["params"]["clients"] * group["params"]["messages"]
            assert run["received"] == run["expected"], (variant, run)
            assert run["reach"] == 1.0
            assert run["published"] == group["params"]["messages"]
            assert run["healthy_closed_by_server"] == 0
            assert 0 < run["p50_ms"] <= run["p99_ms"]
            assert run["frames_per_s"] > 0
            assert run["rss_before_mib"] > 0
            assert run["rss_after_mib"] > 0
            assert row["stats"]["reach"]["median"] == 1.0
        # Every figure of the service is also given relative to the ceiling.
        ratios = rows["ours"]["ratios"]
        assert ratios["frames_per_s"] > 0
        assert ratios["p99_ms"] > 0
        goals = {goal["name"]: goal for goal in rows["ours"]["goals"]}
        assert goals["reach = 1.0 (every run)"]["passed"] is True
        assert f"== {group['scenario']}: {group['label']} ==" in done.stdout
