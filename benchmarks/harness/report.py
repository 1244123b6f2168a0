"""Results: per-run figures grouped by scenario, their medians and spread, ratios to the
reference variant, goal checks, and the printed table."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal[
    "broadcast", "slow", "capacity", "http", "recovery", "history", "storm", "jobs", "kill", "suite"
]

# history: the ratio history on / off of the paced CPU per frame counts as unchanged inside
# 1.0 +/- this (benchmarks/README.md, "Goals", says why).
CPU_NOISE = 0.1


@dataclass
class Row:
    variant: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def stats(self) -> dict[str, dict[str, float]]:
        """median, min and max of every numeric figure over the runs that have it."""
        keys = {key for run in self.runs for key, value in run.items() if _number(value)}
        result: dict[str, dict[str, float]] = {}
        for key in sorted(keys):
            values = [run[key] for run in self.runs if _number(run.get(key))]
            result[key] = {
                "median": statistics.median(values),
                "min": min(values),
                "max": max(values),
            }
        return result

    def median(self, key: str) -> float | None:
        entry = self.stats().get(key)
        return entry["median"] if entry else None

    def minimum(self, key: str) -> float | None:
        entry = self.stats().get(key)
        return entry["min"] if entry else None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass
class Goal:
    name: str
    value: float | None
    passed: bool | None  # None: could not be measured


@dataclass
class Group:
    """One table: a scenario at one size, a row per variant."""

    scenario: str
    label: str
    kind: Kind
    params: dict[str, Any]
    reference: str | None = None
    # Printed under the title: what the reference row measured, when it differs.
    note: str = ""
    # The service's variant with METRICS_ENABLED=false: the metrics-on row is held to it.
    metrics_off: str | None = None
    rows: dict[str, Row] = field(default_factory=dict)

    def row(self, variant: str) -> Row:
        return self.rows.setdefault(variant, Row(variant))

    def ratio(self, variant: str, key: str) -> float | None:
        if self.reference is None or variant == self.reference:
            return None
        return self.ratio_to(variant, self.reference, key)

    def ratio_to(self, variant: str, other: str, key: str) -> float | None:
        """`variant`'s median of `key` over `other`'s, or None when either has none."""
        if other not in self.rows or variant not in self.rows:
            return None
        mine, theirs = self.rows[variant].median(key), self.rows[other].median(key)
        if mine is None or not theirs:
            return None
        return mine / theirs

    def _unchanged_by_metrics(self, variant: str, key: str, what: str) -> list[Goal]:
        """Metrics on (the service's default) costs nothing measurable against metrics off."""
        if self.metrics_off is None or variant in (self.metrics_off, self.reference):
            return []
        value = self.ratio_to(variant, self.metrics_off, key)
        name = f"{what} = 1.0 ± {CPU_NOISE}x metrics off"
        return [_within(name, value, 1.0 - CPU_NOISE, 1.0 + CPU_NOISE)]

    def goals(self, variant: str) -> list[Goal]:
        row = self.rows[variant]
        if not row.runs:
            return []
        if self.kind == "broadcast" and variant != self.reference:
            # (CPU/frame, p99) limits as ratios to the reference; channels: CPU only.
            limits = {"bursts": (1.2, None), "channels": (1.5, None)}.get(self.scenario, (1.5, 1.5))
            goals = [_at_least("reach = 1.0 (every run)", row.minimum("reach"), 1.0)]
            goals.append(
                _at_most(
                    f"CPU/frame <= {limits[0]}x ceiling",
                    self.ratio(variant, "cpu_us_per_frame"),
                    limits[0],
                )
            )
            if limits[1] is not None:
                goals.append(
                    _at_most(
                        f"p99 <= {limits[1]}x ceiling", self.ratio(variant, "p99_ms"), limits[1]
                    )
                )
            return goals + self._unchanged_by_metrics(variant, "cpu_us_per_frame", "CPU/frame")
        if self.kind == "slow":
            return [
                _at_least("healthy reach = 1.0 (every run)", row.minimum("healthy_reach"), 1.0),
                _at_most("healthy p99 <= 1.5x no-slow run", row.median("p99_vs_no_slow"), 1.5),
                _below("memory growth < 10 MiB", row.median("memory_growth_mib"), 10.0),
            ]
        if self.kind == "capacity" and variant != self.reference:
            return [
                _at_least("every connection live (every run)", row.minimum("live"), 1.0),
                _at_most(
                    "memory/connection <= 2x ceiling",
                    self.ratio(variant, "kib_per_connection"),
                    2.0,
                ),
                _at_least("connects/s >= 0.5x ceiling", self.ratio(variant, "connects_per_s"), 0.5),
            ]
        if self.kind == "history":
            goals = [
                _at_least("every publish delivered (every run)", row.minimum("publish_reach"), 1.0),
                _at_least("paced reach = 1.0 (every run)", row.minimum("reach"), 1.0),
            ]
            if variant != self.reference:
                goals.append(
                    _at_least(
                        "publishes/s >= 0.7x history off",
                        self.ratio(variant, "publishes_per_s"),
                        0.7,
                    )
                )
                goals.append(
                    _within(
                        f"CPU/frame = 1.0 ± {CPU_NOISE}x history off",
                        self.ratio(variant, "cpu_us_per_frame"),
                        1.0 - CPU_NOISE,
                        1.0 + CPU_NOISE,
                    )
                )
            return goals
        if self.kind == "storm":
            return [
                _at_least("every client recovered (every run)", row.minimum("recovered_share"), 1.0)
            ]
        if self.kind == "kill":
            return [
                _at_least("every job succeeded (every run)", row.minimum("succeeded_share"), 1.0),
                _at_least(
                    "every effect exactly once (every run)", row.minimum("effect_once_share"), 1.0
                ),
            ]
        if self.kind == "suite":
            return [_below("whole matrix < 90 s", row.median("wall_s"), 90.0)]
        if self.kind == "http" and variant != self.reference:
            return [
                _at_least("req/s >= 0.9x bare FastAPI", self.ratio(variant, "requests_per_s"), 0.9),
                *self._unchanged_by_metrics(variant, "requests_per_s", "req/s"),
            ]
        return []

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "label": self.label,
            "kind": self.kind,
            "params": self.params,
            "reference": self.reference,
            "metrics_off": self.metrics_off,
            "note": self.note,
            "rows": [
                {
                    "variant": row.variant,
                    "runs": row.runs,
                    "errors": row.errors,
                    "stats": row.stats(),
                    "ratios": {key: self.ratio(row.variant, key) for key in RATIO_KEYS[self.kind]},
                    "goals": [goal.__dict__ for goal in self.goals(row.variant)],
                }
                for row in self.rows.values()
            ],
        }


def _at_least(name: str, value: float | None, limit: float) -> Goal:
    return Goal(name, value, None if value is None else value >= limit - 1e-9)


def _at_most(name: str, value: float | None, limit: float) -> Goal:
    return Goal(name, value, None if value is None else value <= limit)


def _below(name: str, value: float | None, limit: float) -> Goal:
    return Goal(name, value, None if value is None else value < limit)


def _within(name: str, value: float | None, low: float, high: float) -> Goal:
    return Goal(name, value, None if value is None else low <= value <= high)


RATIO_KEYS: dict[Kind, tuple[str, ...]] = {
    "broadcast": ("frames_per_s", "p50_ms", "p99_ms", "cpu_us_per_frame", "rss_after_mib"),
    "slow": (),
    "capacity": ("connects_per_s", "cpu_us_per_connection", "kib_per_connection"),
    "http": ("requests_per_s", "cpu_us_per_request"),
    "recovery": (),
    "history": ("publishes_per_s", "cpu_us_per_publish", "cpu_us_per_frame", "p99_ms"),
    "storm": (),
    "jobs": ("jobs_per_s", "p50_ms", "p99_ms", "cpu_us_per_job"),
    "kill": (),
    "suite": (),
}


# --- the printed table -------------------------------------------------------------------

Column = tuple[str, Callable[[Group, Row], str]]


def _num(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100_000:
        return f"{value / 1000:,.0f}k"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}" if value else "0"


def _reach(value: float) -> str:
    # Truncated, never rounded up: 0.99996 must not print as 1.0000.
    return "1.0" if value == 1 else f"{math.floor(value * 10_000) / 10_000:.4f}"


def _figure(key: str, digits: int = 3) -> Callable[[Group, Row], str]:
    """Median, and the spread (max - min) as a percentage of it when there are several runs."""

    def show(group: Group, row: Row) -> str:
        entry = row.stats().get(key)
        if entry is None:
            return "-"
        shares = "reach" in key or key == "live"
        text = _reach(entry["median"]) if shares else _num(entry["median"], digits)
        if len(row.runs) > 1 and entry["median"]:
            spread = (entry["max"] - entry["min"]) / abs(entry["median"]) * 100
            text += f" ±{spread / 2:.0f}%"
        return text

    return show


def _ratio(key: str) -> Callable[[Group, Row], str]:
    def show(group: Group, row: Row) -> str:
        value = group.ratio(row.variant, key)
        return "-" if value is None else f"{value:.2f}x"

    return show


def _rss(group: Group, row: Row) -> str:
    before, after = row.median("rss_before_mib"), row.median("rss_after_mib")
    if before is None or after is None:
        return "-"
    return f"{before:.0f}->{after:.0f}"


def _spread(group: Group, row: Row) -> str:
    spreads: list[list[int]] = [
        run["connections_per_worker"] for run in row.runs if run.get("connections_per_worker")
    ]
    return "/".join(str(count) for count in spreads[0]) if spreads else ""


def _out_of(key: str, total_key: str) -> Callable[[Group, Row], str]:
    """`key` out of `total_key` (medians), as "998/1000"."""

    def show(group: Group, row: Row) -> str:
        value, total = row.median(key), row.median(total_key)
        if value is None or total is None:
            return "-"
        return f"{value:.0f}/{total:.0f}"

    return show


def _closed(group: Group, row: Row) -> str:
    entry = row.stats().get("slow_closed")
    total = row.median("slow_clients")
    if entry is None or total is None:
        return "-"
    return f"{entry['median']:.0f}/{total:.0f}"


COLUMNS: dict[Kind, list[Column]] = {
    "broadcast": [
        ("frames/s", _figure("frames_per_s")),
        ("reach", _figure("reach", 4)),
        ("p50 ms", _figure("p50_ms")),
        ("p99 ms", _figure("p99_ms")),
        ("CPU us/frame", _figure("cpu_us_per_frame")),
        ("RSS MiB", _rss),
        ("fps xC", _ratio("frames_per_s")),
        ("CPU xC", _ratio("cpu_us_per_frame")),
        ("p99 xC", _ratio("p99_ms")),
        ("RSS xC", _ratio("rss_after_mib")),
        ("per worker", _spread),
    ],
    "slow": [
        ("healthy reach", _figure("healthy_reach", 4)),
        ("p99 ms", _figure("healthy_p99_ms")),
        ("no-slow p99", _figure("no_slow_p99_ms")),
        ("p99 x no-slow", _figure("p99_vs_no_slow")),
        ("mem growth MiB", _figure("memory_growth_mib")),
        ("slow closed", _closed),
        ("closed after s", _figure("slow_close_s")),
        ("kernel queue MiB", _figure("slow_send_queue_mib")),
        ("frames/s", _figure("frames_per_s")),
    ],
    "capacity": [
        ("connects/s", _figure("connects_per_s")),
        ("CPU us/conn", _figure("cpu_us_per_connection")),
        ("KiB/conn", _figure("kib_per_connection")),
        ("RSS MiB", _rss),
        ("live", _figure("live", 4)),
        ("conn/s xC", _ratio("connects_per_s")),
        ("CPU xC", _ratio("cpu_us_per_connection")),
        ("KiB xC", _ratio("kib_per_connection")),
    ],
    "http": [
        ("req/s", _figure("requests_per_s")),
        ("CPU us/req", _figure("cpu_us_per_request")),
        ("req/s x bare", _ratio("requests_per_s")),
        ("errors", _figure("errors")),
    ],
    "recovery": [
        ("recovery s", _figure("recovery_s")),
        ("outage s", _figure("outage_s")),
        ("client reconnects", _figure("client_reconnects")),
        ("failed publishes", _figure("failed_publishes_during_outage")),
    ],
    "history": [
        ("publishes/s", _figure("publishes_per_s")),
        ("CPU us/publish", _figure("cpu_us_per_publish")),
        ("Redis us/publish", _figure("redis_cpu_us_per_publish")),
        ("delivered", _figure("publish_reach", 4)),
        ("paced reach", _figure("reach", 4)),
        ("CPU us/frame", _figure("cpu_us_per_frame")),
        ("p99 ms", _figure("p99_ms")),
        ("pub/s x off", _ratio("publishes_per_s")),
        ("CPU/pub x off", _ratio("cpu_us_per_publish")),
        ("CPU/frame x off", _ratio("cpu_us_per_frame")),
    ],
    "storm": [
        ("recovered", _out_of("recovered_clients", "clients")),
        ("last live s", _figure("last_live_s")),
        ("median live s", _figure("median_live_s")),
        ("serving s", _figure("serving_s")),
        ("CPU s", _figure("cpu_s")),
        ("startup CPU s", _figure("startup_cpu_s")),
        ("CPU ms/client", _figure("cpu_ms_per_client")),
        ("failed attempts", _figure("failed_attempts")),
        ("refused", _figure("refused_attempts")),
        ("gaps", _figure("gaps")),
        ("dups", _figure("duplicates")),
        ("not recovered", _figure("not_recovered")),
    ],
    "jobs": [
        ("jobs/s", _figure("jobs_per_s")),
        ("p50 ms", _figure("p50_ms")),
        ("p99 ms", _figure("p99_ms")),
        ("enqueues/s", _figure("enqueues_per_s")),
        ("CPU us/job", _figure("cpu_us_per_job")),
        ("Redis us/job", _figure("redis_cpu_us_per_job")),
        ("Redis cmds/job", _figure("redis_commands_per_job")),
        ("jobs/s x bg", _ratio("jobs_per_s")),
        ("p99 x bg", _ratio("p99_ms")),
    ],
    "kill": [
        ("succeeded", _out_of("succeeded", "jobs")),
        ("done at kill", _figure("done_at_kill")),
        ("in flight", _figure("in_flight_at_kill")),
        ("ran twice", _figure("ran_twice")),
        ("effects twice", _figure("effects_twice")),
        ("effects missing", _figure("effects_missing")),
        ("kill to last s", _figure("kill_to_last_s")),
    ],
    "suite": [
        ("wall s", _figure("wall_s")),
        ("exit code", _figure("exit_code")),
        ("", lambda g, r: str(r.runs[-1].get("summary", "")) if r.runs else ""),
    ],
}


def _goal_text(goals: list[Goal]) -> str:
    parts = []
    for goal in goals:
        mark = "n/a" if goal.passed is None else ("PASS" if goal.passed else "FAIL")
        value = "" if goal.value is None else f" ({_num(goal.value)})"
        parts.append(f"{mark} {goal.name}{value}")
    return "; ".join(parts)


def _stage_lines(stages: dict[str, dict[str, float]], shown: int = 10) -> list[str]:
    """The longest stages of a suite run: seconds summed over tests and workers."""
    total = sum(stage["seconds"] for stage in stages.values()) or 1.0
    lines = ["  stages (test seconds summed over workers, share of all test time):"]
    for name, stage in list(stages.items())[:shown]:
        lines.append(
            f"    {stage['seconds']:6.1f} s {stage['seconds'] / total:4.0%}"
            f"  {name} x{stage['tests']:.0f}"
        )
    return lines


def render(group: Group) -> str:
    """The group as a plain-text table, one line per variant, goals at the end of each line."""
    columns = COLUMNS[group.kind]
    header = ["variant", *(name for name, _ in columns)]
    lines: list[list[str]] = []
    notes: list[str] = []
    for row in group.rows.values():
        if not row.runs:
            lines.append([row.variant, *(["-"] * len(columns))])
        else:
            lines.append([row.variant, *(show(group, row) for _, show in columns)])
        goals = _goal_text(group.goals(row.variant))
        if goals:
            notes.append(f"  {row.variant}: {goals}")
        for error, count in Counter(row.errors).items():
            notes.append(f"  {row.variant}: {count} run(s) failed: {error}")
        if group.kind == "suite" and row.runs:
            notes.extend(_stage_lines(row.runs[-1].get("stages", {})))
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    out = [f"== {group.scenario}: {group.label} =="]
    if group.note:
        out.append(f"   ({group.note})")
    for line in [header, *lines]:
        out.append(
            "  ".join(
                cell.rjust(width) if i else cell.ljust(width)
                for i, (cell, width) in enumerate(zip(line, widths, strict=True))
            ).rstrip()
        )
    out.extend(notes)
    return "\n".join(out)
