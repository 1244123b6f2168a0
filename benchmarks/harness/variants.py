"""How to start each variant as a real process on a loopback port, and the bakes they need."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.client import ClientConnection

from . import procs
from .tokens import Issuer
from .wire import ChannelPerSocket, Multiplexed, Refused, Wire, abort_all

SERVERS = Path(__file__).resolve().parent.parent / "servers"
LOG_LEVEL = "warning"  # no access log lines: they would be counted as the server's CPU

WS_VARIANTS = ("ceiling", "tutorial", "broadcaster", "ours", "ours-redis")
# Served over HTTP only: ready once their port accepts connections. `background` is the
# jobs scenario's in-process baseline (harness/jobs.py).
HTTP_VARIANTS = ("bare", "ours-http", "ours-http-nometrics", "background")
# The Redis bake at one worker with history off (HISTORY_SIZE=0: offsets only) and on
# (`Workspace.history_size`): the history scenario compares them.
HISTORY_VARIANTS = ("ours-redis-nohistory", "ours-redis-history")
# `ours` and `ours-http` with METRICS_ENABLED=false: the metrics scenario compares each with
# its twin above (metrics on, the service's default) in the same run.
METRICS_OFF = {"ours": "ours-nometrics", "ours-http": "ours-http-nometrics"}
# The baked service's variants: they speak the multiplexed protocol of `WS /ws`.
SERVICE_VARIANTS = ("ours", "ours-redis", "ours-http", *HISTORY_VARIANTS, *METRICS_OFF.values())
PROBE_CHANNEL = "warmup-probe"

# The baked service's limits, set so that they never shape a benchmark (each is still checked
# on every command and handshake, so its cost stays in the figures):
SERVICE_LIMITS = {
    # One publisher sends a whole burst back to back (200 messages, `--messages`), or 100
    # messages/s for a minute (slow): the per-connection token bucket (default 50/s, bursts
    # of 100) would refuse most of them. Far above anything the harness sends.
    "WS_RATE": "1000000",
    "WS_BURST": "1000000",
    # Above the capacity scenario's 5,000 connections (and its probes); RLIMIT_NOFILE is what
    # bounds a run here (see run.py).
    "WS_MAX_CONNECTIONS": "100000",
}
# The service reads these (and every setting) from the environment: the harness's own
# environment must not configure it.
_SERVICE_SETTINGS = (
    "AUTH_", "WS_", "REDIS_", "HISTORY_", "DOCS_", "DEMO_", "JOB_", "WORKER", "METRICS_", "LOG_",
    "OTEL_", "FASTAPI_OTEL", "PROMETHEUS_",
)  # fmt: skip
_SERVICE_NAMES = {"ENVIRONMENT", "HOST", "PORT", "QUEUE_REPORT_CRON", "PYTHONPATH"}

# Format strings ({redis_workers} is filled in, other braces doubled).
DESCRIPTIONS = {
    "ceiling": "plain websockets server, websockets.broadcast()",
    "tutorial": "FastAPI docs ConnectionManager: await send_text() per client",
    "broadcaster": "encode/broadcaster README chat pattern, memory backend",
    "ours": "baked service, in-memory, 1 worker, authentication on",
    "ours-redis": "baked service with Redis, {redis_workers} uvicorn worker(s), authentication on",
    "ours-redis-nohistory": "baked service with Redis, 1 worker, HISTORY_SIZE=0 (history off)",
    "ours-redis-history": "baked service with Redis, 1 worker, HISTORY_SIZE={history_size}",
    "bare": "bare FastAPI app, GET /health -> {{'status': 'ok'}}",
    "ours-http": "baked service's GET /health",
    "ours-nometrics": "baked service, in-memory, 1 worker, authentication on, metrics off",
    "ours-http-nometrics": "baked service's GET /health, METRICS_ENABLED=false",
    "background": "FastAPI BackgroundTasks in the app's process, scheduled by POST /jobs",
    "queue-1": "baked task queue (SAQ on Redis), 1 worker process, WORKER_CONCURRENCY=10",
    "queue-2": "baked task queue (SAQ on Redis), 2 worker processes, WORKER_CONCURRENCY=10",
    "queue-kill": "baked task queue, 2 worker processes, JOB_HEARTBEAT_TIMEOUT=3, one SIGKILLed",
}


class Unavailable(Exception):
    """A variant cannot run here (the template does not bake it yet, a tool is missing)."""


@dataclass
class Server:
    """A started variant: its process tree, port, and how its clients speak to it."""

    variant: str
    process: procs.Process
    port: int
    wire: Wire
    workers: int = 1

    def stop(self) -> None:
        self.process.stop()

    def worker_pids(self) -> list[int]:
        """The processes serving connections: the leader alone, or its uvicorn workers."""
        if self.workers == 1:
            return [self.process.pid]
        return [
            pid
            for pid in self.process.tree()
            if pid != self.process.pid and "resource_tracker" not in procs.command_line(pid)
        ]


@dataclass
class Redis:
    """A redis-server this harness started on a free loopback port, with no persistence."""

    port: int
    process: procs.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self, log_dir: Path, timeout: float = 10.0) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--protected-mode", "no"]
        self.process = procs.start(f"redis-{self.port}", argv, cwd=log_dir, log_dir=log_dir)
        await self.wait_ready(timeout)

    async def wait_ready(self, timeout: float) -> None:
        """Return once the server answers PING."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.process.alive():
                raise RuntimeError(f"redis-server exited:\n{self.process.log_tail()}")
            with contextlib.suppress(OSError, TimeoutError, asyncio.IncompleteReadError):
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", self.port), 0.5
                )
                try:
                    writer.write(b"PING\r\n")
                    if await asyncio.wait_for(reader.readline(), 0.5) == b"+PONG\r\n":
                        return
                finally:
                    writer.close()
            await asyncio.sleep(0.02)  # polling a server that is still starting
        raise TimeoutError(f"redis-server on {self.port} did not answer PING in {timeout}s")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@dataclass
class Workspace:
    """Where the runs keep bakes and logs, and the shared Redis they use."""

    root: Path
    template: Path
    python: str = sys.executable
    # Bakes by name (memory, redis, jobs): a bake that failed is its Unavailable.
    _bakes: dict[str, Path | Exception] = field(default_factory=dict)
    redis: Redis | None = None
    # Signs the baked service's tokens: its AUTH_SECRET, one per workspace.
    issuer: Issuer = field(default_factory=Issuer)
    # uvicorn workers of the `ours-redis` variant.
    redis_workers: int = 2
    # HISTORY_SIZE of `ours-redis-history` (and of the storm's service).
    history_size: int = 100

    @property
    def logs(self) -> Path:
        path = self.root / "logs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def bake(self, with_redis: bool) -> Path:
        """The `src` folder of a websockets bake (with Redis or not), baked once per workspace."""
        return self._baked("redis" if with_redis else "memory")

    def jobs_bake(self) -> Path:
        """The `src` folder of the Redis bake with the task queue (`use_task_queue=true`).

        A bake of its own: the queue adds routes and a Redis connection to the web process,
        which the other Redis variants must not measure.
        """
        src = self._baked("jobs")
        if not (src / package_of(src) / "tasks" / "queue.py").exists():
            raise Unavailable("the template has no task queue yet (tasks/queue.py missing)")
        return src

    def _baked(self, name: str) -> Path:
        if name not in self._bakes:
            self._bakes[name] = self._bake(name)
        result = self._bakes[name]
        if isinstance(result, Exception):
            raise result
        return result

    def _bake(self, name: str) -> Path | Exception:
        out = self.root / f"bake-{name}"
        with_redis = name != "memory"
        answers = ["use_websockets=true", f"use_redis={'true' if with_redis else 'false'}"]
        if with_redis:
            answers.append("use_lifespan=true")
        if name == "jobs":
            answers.append("use_task_queue=true")
        argv = [
            self.python,
            "-m",
            "cookiecutter",
            "--no-input",
            str(self.template),
            "-o",
            str(out),
            *answers,
        ]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            return Unavailable(
                f"bake failed: {done.stderr.strip().splitlines()[-1:] or done.returncode}"
            )
        mains = sorted(out.glob("*/src/*/__main__.py"))
        if not mains:
            return Unavailable("bake has no src/<package>/__main__.py")
        package = mains[0].parent
        if not (package / "api" / "ws.py").exists():
            return Unavailable("the template has no WebSocket hub yet (api/ws.py missing)")
        if with_redis and "redis_url" not in (package / "settings.py").read_text():
            return Unavailable("the Redis bake has no REDIS_URL setting yet")
        return package.parent

    async def shared_redis(self) -> Redis:
        if self.redis is None or self.redis.process is None or not self.redis.process.alive():
            self.redis = Redis(procs.free_port())
            await self.redis.start(self.logs)
        return self.redis


def _uvicorn(app: str, port: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        LOG_LEVEL,
        *extra,
    ]


def package_of(src: Path) -> str:
    """The name of the bake's package in its `src` folder."""
    return next(path.parent.name for path in sorted(src.glob("*/__main__.py")))


def service_environment(src: Path, settings: dict[str, str]) -> dict[str, str]:
    """This process's environment without any of the service's settings, plus `settings`
    and the bake on PYTHONPATH: the shell the harness runs in cannot change the service."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(_SERVICE_SETTINGS) and k.upper() not in _SERVICE_NAMES
    }
    return {**env, **settings, "PYTHONPATH": str(src)}


async def launch(
    variant: str,
    space: Workspace,
    redis: Redis | None = None,
    timeout: float = 30.0,
    *,
    port: int | None = None,
    workers: int | None = None,
) -> Server:
    """Start `variant` on `port` (default: a free one) and return once it serves WebSockets
    (or HTTP). `workers` overrides the uvicorn workers of `ours-redis`."""
    port = port or procs.free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "WORKERS", "PYTHONPATH"}}
    count = 1  # worker processes
    wire: Wire = ChannelPerSocket(f"ws://127.0.0.1:{port}")
    # Every server runs inside the workspace: no stray .env is read, and a process
    # left behind would be easy to find (its cwd is under the workspace).
    cwd = space.root
    if variant == "ceiling":
        argv = [space.python, str(SERVERS / "ceiling.py"), "--port", str(port)]
    elif variant == "tutorial":
        argv = _uvicorn("tutorial:app", port, "--app-dir", str(SERVERS))
    elif variant == "broadcaster":
        argv = _uvicorn("broadcaster_chat:app", port, "--app-dir", str(SERVERS))
    elif variant == "bare":
        argv = _uvicorn("bare:app", port, "--app-dir", str(SERVERS))
    elif variant == "background":
        argv = _uvicorn("background:app", port, "--app-dir", str(SERVERS))
    elif variant in SERVICE_VARIANTS:
        src = space.bake(with_redis=variant.startswith("ours-redis"))
        package = package_of(src)
        # Authentication on, as in production: clients present tokens signed with this key.
        # (ENVIRONMENT stays development, which with a key set behaves exactly like production.)
        env = service_environment(src, {**SERVICE_LIMITS, "AUTH_SECRET": space.issuer.secret})
        wire = Multiplexed(f"ws://127.0.0.1:{port}", space.issuer)
        cwd = src.parent  # no .env there: the environment below is the whole configuration
        if variant in METRICS_OFF.values():
            env["METRICS_ENABLED"] = "false"
        if variant.startswith("ours-http"):
            # The app applies LOG_LEVEL to uvicorn's loggers too: the same level as --log-level.
            env["LOG_LEVEL"] = LOG_LEVEL
            argv = _uvicorn(f"{package}.main:app", port)
        else:
            argv = [space.python, "-m", package]
            env.update(HOST="127.0.0.1", PORT=str(port), LOG_LEVEL=LOG_LEVEL)
            if variant.startswith("ours-redis"):
                count = workers or (space.redis_workers if variant == "ours-redis" else 1)
                redis = redis or await space.shared_redis()
                env.update(REDIS_URL=redis.url, WORKERS=str(count))
                if variant in HISTORY_VARIANTS:
                    on = variant == "ours-redis-history"
                    env["HISTORY_SIZE"] = str(space.history_size if on else 0)
            else:
                env["WORKERS"] = "1"
    else:
        raise ValueError(f"unknown variant {variant!r}")
    process = procs.start(f"{variant}-{port}", argv, env=env, cwd=cwd, log_dir=space.logs)
    server = Server(variant, process, port, wire, count)
    try:
        await procs.wait_for_port(process, port, timeout)
        if variant not in HTTP_VARIANTS:
            await _wait_workers(server, timeout)
        if variant in METRICS_OFF or variant in METRICS_OFF.values():
            await asyncio.to_thread(_check_metrics, port, on=variant in METRICS_OFF)
    except BaseException:
        process.stop()
        raise
    return server


def _check_metrics(port: int, *, on: bool) -> None:
    """Raise Unavailable unless GET /metrics answers as METRICS_ENABLED says (200 on, 404 off):
    a comparison of metrics on and off must compare what it says it does."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            status = answer.status
    except urllib.error.HTTPError as error:
        status = error.code
    if status != (200 if on else 404):
        state = "on" if on else "off"
        raise Unavailable(f"GET /metrics answered {status} with metrics {state}")


async def _wait_workers(server: Server, timeout: float) -> None:
    """Return once a client can subscribe on every worker (each has run its startup).

    A connection lands on whichever worker accepts first; probes stay open so the next one
    can land elsewhere, and /proc tells which worker holds each.
    """
    probes: list[ClientConnection] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                probes.append(await server.wire.subscriber([PROBE_CHANNEL], open_timeout=5))
            except Refused:
                raise  # the server answered, not as the protocol says: waiting will not help
            except Exception as exc:  # refused, reset, 5xx during startup: keep polling
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{server.variant}: no WebSocket handshake: {exc}") from exc
                await asyncio.sleep(0.1)  # polling a server that is still starting
                continue
            if server.workers == 1:
                return
            workers = server.worker_pids()
            counts = procs.connections_per_process(workers, server.port)
            if sum(1 for count in counts.values() if count) >= server.workers:
                return
            if time.monotonic() > deadline or len(probes) >= 200:
                return  # report the spread as measured rather than fail
            await asyncio.sleep(0.02)
    finally:
        abort_all(probes)
