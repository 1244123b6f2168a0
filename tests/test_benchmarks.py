"""The benchmark harness runs end to end at toy sizes against the ceiling and the baked service.

No timing is asserted: only that every client received every message (over the baked
service's multiplexed, authenticated protocol as over the ceiling's one channel per socket),
that every capacity connection was live, that the report has its structure, and that no
process the harness started outlives it.
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
        [sys.executable, str(RUN), "--quick", "--scenario", "bursts,paced,channels,capacity",
         "--variants", "ceiling,ours", "--json", str(report_path), "--workdir", str(workdir)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert processes_inside(workdir) == []

    report: dict[str, Any] = json.loads(report_path.read_text())
    assert report["meta"]["quick"] is True
    groups = report["groups"]
    assert [group["scenario"] for group in groups] == ["bursts", "paced", "channels", "capacity"]
    for group in groups:
        assert group["reference"] == "ceiling"
        rows = {row["variant"]: row for row in group["rows"]}
        assert set(rows) == {"ceiling", "ours"}
        for variant, row in rows.items():
            assert row["errors"] == [], (variant, row["errors"])
            (run,) = row["runs"]
            if group["kind"] == "capacity":
                assert run["connections"] == group["params"]["clients"]
                assert run["live"] == 1.0, (variant, run)
                assert run["connects_per_s"] > 0
                assert run["kib_per_connection"] > 0
                continue
            assert run["received"] == run["expected"], (variant, run)
            assert run["reach"] == 1.0
            assert run["publisher_errors"] == 0, (variant, run["publisher_first_error"])
            assert run["healthy_closed_by_server"] == 0
            assert 0 < run["p50_ms"] <= run["p99_ms"]
            assert run["frames_per_s"] > 0
            assert run["rss_before_mib"] > 0
            assert run["rss_after_mib"] > 0
            assert row["stats"]["reach"]["median"] == 1.0
        assert f"== {group['scenario']}: {group['label']} ==" in done.stdout
        goals = {goal["name"]: goal for goal in rows["ours"]["goals"]}
        if group["kind"] == "capacity":
            assert goals["every connection live (every run)"]["passed"] is True
            assert rows["ours"]["ratios"]["kib_per_connection"] > 0
            assert rows["ours"]["ratios"]["connects_per_s"] > 0
            continue
        assert goals["reach = 1.0 (every run)"]["passed"] is True
        # Every figure of the service is also given relative to the ceiling.
        ratios = rows["ours"]["ratios"]
        assert ratios["frames_per_s"] > 0
        assert ratios["p99_ms"] > 0

    bursts, paced, channels, _ = groups
    for group in (bursts, paced):
        for row in group["rows"]:
            (run,) = row["runs"]
            assert run["expected"] == group["params"]["clients"] * group["params"]["messages"]
            assert run["published"] == group["params"]["messages"]
    # Many channels: each subscriber gets the messages of its own channels only, and the
    # ceiling's row is its single-channel paced run, measured once for both tables.
    params = channels["params"]
    (ours,) = next(row for row in channels["rows"] if row["variant"] == "ours")["runs"]
    assert ours["published"] == params["messages"]
    per_subscriber = params["messages"] * params["per_client"] // params["channels"]
    assert ours["expected"] == params["clients"] * per_subscriber
    ceiling = {
        group["scenario"]: row for group in groups for row in group["rows"] if row["variant"] == "ceiling"
    }
    assert ceiling["channels"]["runs"] == ceiling["paced"]["runs"]
    assert "single-channel paced run" in channels["note"]
