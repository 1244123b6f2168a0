"""Benchmark the baked service's WebSocket fan-out against reference servers, and its task
queue against FastAPI's BackgroundTasks.

    python benchmarks/run.py                      # everything (about an hour on 2 cores)
    python benchmarks/run.py --quick              # every scenario at toy sizes (seconds)
    python benchmarks/run.py --scenario bursts --variants ceiling,ours --runs 5
    python benchmarks/run.py --scenario channels,capacity --variants ceiling,ours
    python benchmarks/run.py --scenario history,storm    # issue 12: history and recovery
    python benchmarks/run.py --scenario jobs             # the task queue and BackgroundTasks

Each run starts its variant as a real process on a loopback port, drives it from this one
asyncio process, and stops every process it started, also on Ctrl-C and on errors.
benchmarks/README.md explains every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import procs
from harness.history import Publishing, history_run
from harness.jobqueue import READ_BATCH
from harness.jobs import KILL_VARIANT, Jobs, Kill, jobs_run, kill_run
from harness.jobs import REFERENCE as JOBS_REFERENCE
from harness.jobs import VARIANTS as JOBS_VARIANTS
from harness.report import Group, Row, render
from harness.scenarios import (
    FD_HEADROOM,
    Broadcast,
    Capacity,
    broadcast_run,
    capacity_run,
    http_run,
    redis_recovery,
    slow_pair,
    suite_run,
)
from harness.storm import VARIANT as STORM_VARIANT
from harness.storm import Storm, storm_run
from harness.variants import (
    DESCRIPTIONS,
    HISTORY_VARIANTS,
    METRICS_OFF,
    SERVICE_VARIANTS,
    WS_VARIANTS,
    Unavailable,
    Workspace,
)

SCENARIOS = (
    "bursts",
    "paced",
    "channels",
    "slow",
    "capacity",
    "redis",
    "history",
    "storm",
    "http",
    "jobs",
    "metrics",
)
REPO = Path(__file__).resolve().parent.parent
# option: (full run, --quick). Full sizes are the spec's (issue 6).
DEFAULTS: dict[str, tuple[Any, Any]] = {
    "runs": (3, 1),
    "clients": ([100, 500, 1000], [20]),
    "messages": (200, 20),
    "size": (100, 100),
    "paced_clients": (1000, 20),
    "paced_rate": (10.0, 10.0),
    "paced_seconds": (20.0, 1.0),
    # 100 msgs/s to ~100 subscribers each: 10,000 frames/s, as paced (10/s to 1,000).
    "channels_clients": (1000, 20),
    "channels_count": (100, 5),
    "channels_per_client": (10, 2),
    "channels_rate": (100.0, 20.0),
    "channels_seconds": (20.0, 1.0),
    "slow_clients": (200, 20),
    "slow_fraction": (0.05, 0.05),
    "slow_size": (16384, 1024),
    "slow_rate": (100.0, 50.0),
    "slow_seconds": (60.0, 2.0),
    "capacity_clients": (5000, 50),
    "capacity_concurrency": (50, 50),
    "recovery_clients": (200, 20),
    "outage": (2.0, 1.0),
    "redis_restart": (True, False),
    "history_publishers": (8, 2),
    "history_seconds": (10.0, 0.5),
    "storm_clients": (1000, 20),
    "storm_rate": (10.0, 10.0),
    "http_seconds": (5.0, 1.0),
    "http_connections": (32, 8),
    "jobs": (2000, 100),
    "jobs_enqueuers": (4, 4),
    "kill_jobs": (1000, 100),
    "kill_work": (0.05, 0.05),
    # The service's default; 1 in --quick: each job the killed worker held is taken back
    # about 5 s after the one before it (benchmarks/README.md, "Scenarios", says why).
    "kill_concurrency": (10, 1),
    "idle": (3.0, 1.0),
}


def _list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _ints(text: str) -> list[int]:
    return [int(item) for item in _list(text)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="toy sizes and 1 run: the whole thing in seconds"
    )
    parser.add_argument(
        "--scenario",
        type=_list,
        default=list(SCENARIOS),
        help=f"comma list of {','.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--variants",
        type=_list,
        default=list(WS_VARIANTS),
        help=f"comma list of {','.join(WS_VARIANTS)}",
    )
    parser.add_argument(
        "--runs", type=int, help="runs per figure, medians reported (default 3, quick 1)"
    )
    parser.add_argument(
        "--suite", action="store_true", help="also time the template's own suite (pytest -n auto)"
    )
    parser.add_argument(
        "--json", type=Path, help="also write the full report (every run) as JSON here"
    )
    parser.add_argument(
        "--template", type=Path, default=REPO, help="the cookiecutter template to bake"
    )
    parser.add_argument(
        "--workdir", type=Path, help="where bakes and server logs go (default: a temp dir)"
    )
    sizes = parser.add_argument_group(
        "sizes (defaults: the spec's full sizes, or toy sizes with --quick)"
    )
    sizes.add_argument("--clients", type=_ints, help="bursts: client counts (100,500,1000)")
    sizes.add_argument("--messages", type=int, help="bursts: messages per burst (200)")
    sizes.add_argument("--size", type=int, help="bursts and paced: message size in bytes (100)")
    sizes.add_argument("--paced-clients", type=int, help="paced and redis: clients (1000)")
    sizes.add_argument("--paced-rate", type=float, help="paced and redis: messages per second (10)")
    sizes.add_argument(
        "--paced-seconds", type=float, help="paced and redis: seconds of publishing (20)"
    )
    sizes.add_argument("--channels-clients", type=int, help="channels: clients (1000)")
    sizes.add_argument("--channels-count", type=int, help="channels: channels published to (100)")
    sizes.add_argument(
        "--channels-per-client", type=int, help="channels: channels each client subscribes to (10)"
    )
    sizes.add_argument(
        "--channels-rate", type=float, help="channels: messages per second, across channels (100)"
    )
    sizes.add_argument(
        "--channels-seconds", type=float, help="channels: seconds of publishing (20)"
    )
    sizes.add_argument("--slow-clients", type=int, help="slow: clients (200)")
    sizes.add_argument(
        "--slow-fraction", type=float, help="slow: fraction that stops reading (0.05)"
    )
    sizes.add_argument("--slow-size", type=int, help="slow: message size in bytes (16384)")
    sizes.add_argument("--slow-rate", type=float, help="slow: messages per second (100)")
    sizes.add_argument("--slow-seconds", type=float, help="slow: seconds of publishing (60)")
    sizes.add_argument(
        "--capacity-clients", type=int, help="capacity: idle connections opened (5000)"
    )
    sizes.add_argument(
        "--capacity-concurrency", type=int, help="capacity: connections opening at once (50)"
    )
    sizes.add_argument(
        "--recovery-clients", type=int, help="redis: clients during the Redis restart (200)"
    )
    sizes.add_argument("--outage", type=float, help="redis: seconds Redis stays down (2)")
    sizes.add_argument(
        "--redis-workers",
        type=int,
        default=2,
        help="ours-redis: uvicorn workers (2; with 1, Redis costs apart from a second process)",
    )
    sizes.add_argument(
        "--redis-restart",
        action=argparse.BooleanOptionalAction,
        help="redis: measure recovery after a Redis restart (default on, off with --quick)",
    )
    sizes.add_argument(
        "--history-publishers",
        type=int,
        help="history: connections publishing, each as soon as its last publish was answered (8)",
    )
    sizes.add_argument(
        "--history-seconds", type=float, help="history: seconds of publishing measured (10)"
    )
    sizes.add_argument(
        "--history-size",
        type=int,
        default=100,
        help="history and storm: HISTORY_SIZE with history on (100, the service's default)",
    )
    sizes.add_argument(
        "--storm-clients", type=int, help="storm: clients of the restarted process (1000)"
    )
    sizes.add_argument(
        "--storm-rate", type=float, help="storm: messages/s published through the other (10)"
    )
    sizes.add_argument("--http-seconds", type=float, help="http: seconds measured per run (5)")
    sizes.add_argument("--http-connections", type=int, help="http: keep-alive connections (32)")
    sizes.add_argument("--jobs", type=int, help="jobs: no-op jobs per run (2000)")
    sizes.add_argument(
        "--jobs-enqueuers",
        type=int,
        help="jobs: enqueuers, each enqueuing once its last enqueue was answered (4)",
    )
    sizes.add_argument(
        "--kill-jobs", type=int, help="jobs: jobs of the run that kills a worker (1000)"
    )
    sizes.add_argument(
        "--kill-work", type=float, help="jobs: seconds each of those jobs takes (0.05)"
    )
    sizes.add_argument(
        "--kill-concurrency",
        type=int,
        help="jobs: WORKER_CONCURRENCY of the 2 workers of that run (10, the default; quick 1)",
    )
    sizes.add_argument(
        "--idle", type=float, help="give up on delivery after this many seconds with no frame (3)"
    )
    args = parser.parse_args(argv)
    unknown = set(args.scenario) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    unknown = set(args.variants) - set(WS_VARIANTS)
    if unknown:
        parser.error(f"unknown variant(s): {', '.join(sorted(unknown))}")
    for key, (full, quick) in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    if not 1 <= args.channels_per_client <= args.channels_count:
        parser.error("--channels-per-client must be between 1 and --channels-count")
    return args


Runner = Callable[[str], Awaitable[dict[str, Any]]]


@dataclass
class Plan:
    group: Group
    variants: list[str]
    runner: Runner
    # variant -> what its runs measure: a later table with the same key shows the same runs.
    keys: dict[str, str] = field(default_factory=dict)


def build_plan(args: argparse.Namespace, space: Workspace) -> list[Plan]:
    """Every table to fill, in order, with the variants it compares and how to run one."""
    plans: list[Plan] = []
    variants: list[str] = args.variants
    if "bursts" in args.scenario:
        for clients in args.clients:
            burst = Broadcast(clients, args.messages, args.size, idle=args.idle)
            label = f"N={clients}, {args.messages} msgs x {args.size} B back to back"
            group = Group("bursts", label, "broadcast", burst.__dict__, "ceiling")
            plans.append(Plan(group, variants, _broadcast(space, burst)))

    paced = Broadcast(
        args.paced_clients,
        round(args.paced_rate * args.paced_seconds),
        args.size,
        args.paced_rate,
        idle=args.idle,
        cap=args.paced_seconds * 2 + 10,
    )
    paced_label = (
        f"N={args.paced_clients}, {args.paced_rate:g} msgs/s for {args.paced_seconds:g} s, "
        f"{args.size} B"
    )
    paced_key = repr(paced)
    if "paced" in args.scenario:
        # With the redis scenario selected, ours-redis gets its own table there.
        chosen = [v for v in variants if not (v == "ours-redis" and "redis" in args.scenario)]
        group = Group("paced", paced_label, "broadcast", paced.__dict__, "ceiling")
        plans.append(
            Plan(group, chosen, _broadcast(space, paced), dict.fromkeys(chosen, paced_key))
        )

    if "channels" in args.scenario:
        channels = Broadcast(
            args.channels_clients,
            round(args.channels_rate * args.channels_seconds),
            args.size,
            args.channels_rate,
            idle=args.idle,
            cap=args.channels_seconds * 2 + 10,
            channels=args.channels_count,
            per_client=args.channels_per_client,
        )
        subscribers = args.channels_clients * args.channels_per_client / args.channels_count
        label = (
            f"N={args.channels_clients}, each on {args.channels_per_client} of "
            f"{args.channels_count} channels (~{subscribers:.0f} per channel), "
            f"{args.channels_rate:g} msgs/s across them for {args.channels_seconds:g} s, "
            f"{args.size} B"
        )
        # The baselines hold one channel per socket: the ceiling's figure is its
        # single-channel paced run (the reference), the others are left out.
        note = f"ceiling: one channel per socket, so its single-channel paced run, {paced_label}"
        chosen = [v for v in variants if v == "ceiling" or v in SERVICE_VARIANTS]
        group = Group("channels", label, "broadcast", channels.__dict__, "ceiling", note)

        def channels_runner(variant: str) -> Awaitable[dict[str, Any]]:
            spec = paced if variant == "ceiling" else channels
            return broadcast_run(space, variant, spec)

        plans.append(Plan(group, chosen, channels_runner, {"ceiling": paced_key}))

    if "slow" in args.scenario:
        slow = Broadcast(
            args.slow_clients,
            round(args.slow_rate * args.slow_seconds),
            args.slow_size,
            args.slow_rate,
            args.slow_fraction,
            idle=args.idle,
            cap=args.slow_seconds * 2 + 10,
        )
        label = (
            f"N={args.slow_clients}, {args.slow_fraction:.0%} stop reading, "
            f"{args.slow_size} B at {args.slow_rate:g}/s for {args.slow_seconds:g} s"
        )
        group = Group("slow", label, "slow", slow.__dict__)
        plans.append(Plan(group, variants, lambda v: slow_pair(space, v, slow)))

    if "capacity" in args.scenario:
        capacity = Capacity(args.capacity_clients, args.capacity_concurrency)
        label = (
            f"N={args.capacity_clients} idle connections on one channel, "
            f"{args.capacity_concurrency} opening at once"
        )
        group = Group("capacity", label, "capacity", capacity.__dict__, "ceiling")
        plans.append(Plan(group, variants, lambda v: capacity_run(space, v, capacity)))

    if "redis" in args.scenario and "ours-redis" in variants:
        chosen = [v for v in ("ceiling", "ours-redis") if v in variants]
        workers = f"{space.redis_workers} worker{'s' if space.redis_workers != 1 else ''}"
        label = f"paced over {workers}: {paced_label}"
        group = Group("redis", label, "broadcast", paced.__dict__, "ceiling")
        plans.append(Plan(group, chosen, _broadcast(space, paced), {"ceiling": paced_key}))
        if args.redis_restart:
            clients, outage = args.recovery_clients, args.outage
            label = f"N={clients}, Redis killed for {outage:g} s then restarted"
            group = Group("redis", label, "recovery", {"clients": clients, "outage": outage})
            runner = lambda v: redis_recovery(space, clients, outage, timeout=30)  # noqa: E731
            plans.append(Plan(group, ["ours-redis"], runner))

    if "history" in args.scenario and "ours-redis" in variants:
        publishing = Publishing(
            args.history_publishers,
            args.history_seconds,
            args.size,
            warmup=0.3 if args.quick else 1.0,
            idle=args.idle,
        )
        label = (
            f"1 worker, history off / HISTORY_SIZE={args.history_size}: "
            f"{args.history_publishers} publishers for {args.history_seconds:g} s, "
            f"{args.size} B; paced {paced_label}"
        )
        params = {"publishing": publishing.__dict__, "paced": paced.__dict__}
        group = Group("history", label, "history", params, HISTORY_VARIANTS[0])
        history = lambda v: history_run(space, v, publishing, paced)  # noqa: E731
        plans.append(Plan(group, list(HISTORY_VARIANTS), history))

    if "storm" in args.scenario and "ours-redis" in variants:
        storm = Storm(args.storm_clients, args.storm_rate, after=0.3 if args.quick else 1.0)
        label = (
            f"N={args.storm_clients} on one process, restarted (SIGTERM, start on the same port) "
            f"while another publishes {args.storm_rate:g} msgs/s, HISTORY_SIZE={args.history_size}"
        )
        group = Group("storm", label, "storm", storm.__dict__)
        plans.append(Plan(group, [STORM_VARIANT], lambda v: storm_run(space, storm)))

    if "http" in args.scenario:
        connections, seconds = args.http_connections, args.http_seconds
        warmup = 0.3 if args.quick else 1.0
        label = f"GET /health, {connections} keep-alive connections, {seconds:g} s"
        group = Group(
            "http", label, "http", {"connections": connections, "seconds": seconds}, "bare"
        )
        runner = lambda v: http_run(space, v, connections, seconds, warmup)  # noqa: E731
        plans.append(Plan(group, ["bare", "ours-http"], runner))

    if "metrics" in args.scenario:
        # Issue 14: the service with metrics on (its default) and off, in the same run, on
        # the largest burst, the paced load and GET /health.
        off = METRICS_OFF["ours"]
        burst = Broadcast(max(args.clients), args.messages, args.size, idle=args.idle)
        label = f"N={burst.clients}, {args.messages} msgs x {args.size} B; metrics on / off"
        group = Group("bursts", label, "broadcast", burst.__dict__, "ceiling", metrics_off=off)
        plans.append(Plan(group, ["ceiling", "ours", off], _broadcast(space, burst)))
        group = Group(
            "paced", f"{paced_label}; metrics on / off", "broadcast", paced.__dict__, "ceiling",
            metrics_off=off,
        )  # fmt: skip
        plans.append(
            Plan(group, ["ceiling", "ours", off], _broadcast(space, paced), {"ceiling": paced_key})
        )
        connections, seconds = args.http_connections, args.http_seconds
        off = METRICS_OFF["ours-http"]
        label = f"GET /health, {connections} keep-alive connections, {seconds:g} s; metrics on/off"
        params = {"connections": connections, "seconds": seconds}
        group = Group("http", label, "http", params, "bare", metrics_off=off)
        http = lambda v: http_run(space, v, connections, seconds, 0.3 if args.quick else 1.0)  # noqa: E731
        plans.append(Plan(group, ["bare", "ours-http", off], http))

    if "jobs" in args.scenario:
        jobs = Jobs(args.jobs, args.jobs_enqueuers)
        label = (
            f"{args.jobs} no-op jobs, {args.jobs_enqueuers} enqueuers each enqueuing once "
            "its last enqueue was answered"
        )
        group = Group("jobs", label, "jobs", jobs.__dict__, JOBS_REFERENCE)
        plans.append(Plan(group, list(JOBS_VARIANTS), lambda v: jobs_run(space, v, jobs)))
        kill = Kill(
            args.kill_jobs, args.kill_work, args.kill_concurrency, enqueuers=args.jobs_enqueuers
        )
        label = (
            f"{kill.jobs} jobs of {kill.work * 1000:g} ms with an effect each, 2 workers x "
            f"WORKER_CONCURRENCY={kill.concurrency}, one SIGKILLed once {kill.kill_at:.0%} "
            "finished"
        )
        group = Group("jobs", label, "kill", kill.__dict__)
        plans.append(Plan(group, [KILL_VARIANT], lambda v: kill_run(space, kill)))

    if args.suite:
        group = Group("suite", f"pytest -n auto in {args.template}", "suite", {})

        async def suite(variant: str) -> dict[str, Any]:
            return await asyncio.to_thread(suite_run, args.template, 1800)

        plans.append(Plan(group, ["template suite"], suite))
    return plans


def _broadcast(space: Workspace, spec: Broadcast) -> Runner:
    return lambda variant: broadcast_run(space, variant, spec)


def _brief(figures: dict[str, Any]) -> str:
    shown = []
    for key in (
        "frames_per_s",
        "reach",
        "p99_ms",
        "healthy_reach",
        "requests_per_s",
        "jobs_per_s",
        "kill_to_last_s",
        "recovery_s",
        "publishes_per_s",
        "cpu_us_per_frame",
        "recovered_share",
        "last_live_s",
        "wall_s",
    ):
        value = figures.get(key)
        if isinstance(value, float):
            shown.append(f"{key}={value:.4g}")
    return " ".join(shown)


async def execute(args: argparse.Namespace, space: Workspace, groups: list[Group]) -> None:
    plans = build_plan(args, space)
    measured: dict[tuple[str, str], Row] = {}
    for plan in plans:
        groups.append(plan.group)
        runs = 1 if plan.group.kind == "suite" else args.runs
        given_up: set[str] = set()
        for variant in plan.variants:
            row = plan.group.row(variant)  # rows in the plan's order
            key = plan.keys.get(variant)
            if key is None:
                continue
            earlier = measured.setdefault((variant, key), row)
            if earlier is not row:  # the same runs as an earlier table's row
                row.runs, row.errors = earlier.runs, earlier.errors
                given_up.add(variant)
        # Interleave variants run by run, so a slow drift of the machine hits every variant alike.
        for index in range(runs):
            for variant in plan.variants:
                if variant in given_up:
                    continue
                row = plan.group.row(variant)
                started = time.monotonic()
                where = (
                    f"[{plan.group.scenario} {plan.group.label} | run {index + 1}/{runs}] {variant}"
                )
                try:
                    figures = await plan.runner(variant)
                except Unavailable as exc:
                    row.errors.append(f"unavailable: {exc}")
                    given_up.add(variant)
                    print(f"{where}: unavailable: {exc}", file=sys.stderr, flush=True)
                    continue
                except Exception as exc:  # one failed run is reported, the others still run
                    first_line = (str(exc).strip().splitlines() or [""])[0]
                    row.errors.append(f"{type(exc).__name__}: {first_line}")
                    print(
                        f"{where}: FAILED {type(exc).__name__}: {exc}", file=sys.stderr, flush=True
                    )
                    continue
                row.runs.append(figures)
                print(
                    f"{where}: {_brief(figures)} ({time.monotonic() - started:.1f} s)",
                    file=sys.stderr,
                    flush=True,
                )


def connections_needed(args: argparse.Namespace) -> int:
    """The most connections one selected scenario holds open at once (one side of them)."""
    counts = {
        "bursts": max(args.clients, default=0) + 1,
        "paced": args.paced_clients + 1,
        "channels": max(args.channels_clients, args.paced_clients) + 1,
        "slow": args.slow_clients + 1,
        "capacity": args.capacity_clients + 1,
        "redis": max(args.paced_clients + 1, args.recovery_clients),
        "history": max(args.paced_clients + 1, args.history_publishers + 1),
        "storm": args.storm_clients + 1,
        "http": args.http_connections,
        # The enqueuers, and the queue's connections reading job states at once.
        "jobs": args.jobs_enqueuers + READ_BATCH,
        "metrics": max(max(args.clients, default=0), args.paced_clients, args.http_connections) + 1,
    }
    return max((counts[name] for name in args.scenario), default=0)


def raise_fd_limit(connections: int) -> None:
    """Raise RLIMIT_NOFILE's soft limit to the hard one, for this process and the servers it
    starts (they inherit it); exit naming the limit when even that is too low.

    The client holds one descriptor per connection and the server another, each in its own
    process: 5,000 connections are ~10,000 descriptors on the machine, ~5,000 per process.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    needed = connections + FD_HEADROOM
    if hard != resource.RLIM_INFINITY and hard < needed:
        sys.exit(
            f"error: {connections:,} connections need {needed:,} open files in this process and "
            f"in each server, but RLIMIT_NOFILE's hard limit is {hard:,}: raise it (ulimit -Hn, "
            "limits.conf, systemd's LimitNOFILE, docker run --ulimit nofile=...) or run fewer "
            "clients (--capacity-clients, --clients, ...)"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    procs.install_cleanup()
    raise_fd_limit(connections_needed(args))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="realtime-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    space = Workspace(
        root=workdir,
        template=args.template.resolve(),
        redis_workers=args.redis_workers,
        history_size=args.history_size,
    )
    groups: list[Group] = []
    load_before = os.getloadavg()
    started = time.monotonic()
    interrupted = False
    try:
        try:
            import uvloop  # the client must not be what saturates: a faster loop helps
        except ImportError:
            asyncio.run(execute(args, space, groups))
        else:
            uvloop.run(execute(args, space, groups))
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or SIGTERM (see procs.install_cleanup)
        interrupted = True
        print("interrupted: reporting what finished", file=sys.stderr)
    finally:
        procs.stop_all()

    mode = "quick" if args.quick else "full"
    print(f"# Benchmarks ({mode}, {args.runs} run(s) per figure: median ±half the min-max spread)")
    python = f"{platform.python_implementation()} {platform.python_version()}"
    load_after = os.getloadavg()
    print(f"# {python}, {platform.machine()}, cores={_cores()}")
    # Anything else running competes for the same cores: the load says how quiet it was.
    print(f"# load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    for name in dict.fromkeys(v for g in groups for v in g.rows):
        if name in DESCRIPTIONS:
            description = DESCRIPTIONS[name].format(
                redis_workers=space.redis_workers, history_size=space.history_size
            )
            print(f"#   {name}: {description}")
    print()
    for group in groups:
        print(render(group))
        print()
    print(f"# total {time.monotonic() - started:.0f} s")
    if args.json:
        report = {
            "meta": {
                "quick": args.quick,
                "runs": args.runs,
                "python": platform.python_version(),
                "cores": _cores(),
                "seconds": time.monotonic() - started,
                "interrupted": interrupted,
                "load_average_before": load_before[0],
                "load_average_after": load_after[0],
            },
            "groups": [group.as_json() for group in groups],
        }
        args.json.write_text(json.dumps(report, indent=2))
    failed = any(row.errors for group in groups for row in group.rows.values())
    if args.workdir is None:
        if failed:
            print(f"# server logs kept in {workdir / 'logs'}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 130 if interrupted else 0


def _cores() -> int:
    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    sys.exit(main())
