"""Entry point of `python -m`: serve the app with uvicorn (the default), or mint a token.

`python -m {{ cookiecutter.package_name }}` serves, configured by the settings;
`python -m {{ cookiecutter.package_name }} token --sub alice --channels 'chat:*' --ttl 3600`
prints a token signed with AUTH_SECRET.
{%- if cookiecutter.use_task_queue %}
`python -m {{ cookiecutter.package_name }} worker` runs jobs from the queue, and
`python -m {{ cookiecutter.package_name }} worker --check` says whether one is alive.
{%- endif %}
"""

from __future__ import annotations

import argparse
{%- if cookiecutter.use_task_queue %}
import asyncio
{%- endif %}
{%- if cookiecutter.use_task_queue %}
import logging.config
{%- endif %}
import math
import socket
import sys
{%- if cookiecutter.use_task_queue %}
from collections.abc import Iterable, Sequence
{%- else %}
from collections.abc import Sequence
{%- endif %}

import uvicorn
{%- if cookiecutter.use_task_queue %}
from redis.exceptions import RedisError
{%- endif %}

from .auth.tokens import mint
from .http_protocol import PROTOCOL
from .logs import logging_config
{%- if cookiecutter.use_task_queue %}
from .metrics.multiprocess import check_directory, shared_directory
from .redaction import masked
{%- else %}
from .metrics.multiprocess import shared_directory
{%- endif %}
from .settings import Settings, get_settings
{%- if cookiecutter.use_task_queue %}
from .tasks import worker
from .tasks.context import JobFunction
from .tasks.exporter import exporting
from .tasks.jobs import FUNCTIONS
{%- endif %}

# A development token lives at most a year (seconds).
MAX_TTL = 366 * 24 * 3600


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command `argv` names (default: the process's arguments)."""
    args = parser().parse_args(argv)
    if args.command == "token":
        print(token(args.sub, args.channels, args.publish, args.ttl))
{%- if cookiecutter.use_task_queue %}
    elif args.command == "worker":
        sys.exit(check_worker() if args.check else work())
{%- endif %}
    else:
        serve()


def parser() -> argparse.ArgumentParser:
    commands = argparse.ArgumentParser(prog="python -m {{ cookiecutter.package_name }}")
    sub = commands.add_subparsers(dest="command")
    sub.add_parser("serve", help="serve the app with uvicorn (the default)")
    minting = sub.add_parser(
        "token", help="print a token signed with AUTH_SECRET, for development and tests"
    )
    minting.add_argument("--sub", required=True, help="the user id")
    for claim, what in (("channels", "subscribe"), ("publish", "publish")):
        minting.add_argument(
            f"--{claim}",
            action="extend",
            nargs="+",
            default=[],
            metavar="PATTERN",
            help=f"channels the user may {what} to: exact names or prefixes ending in *"
            " (several, or comma-separated)",
        )
    minting.add_argument("--ttl", type=float, default=3600.0, help="seconds until it expires")
{%- if cookiecutter.use_task_queue %}
    working = sub.add_parser("worker", help="run jobs from the queue until SIGTERM or SIGINT")
    working.add_argument(
        "--check",
        action="store_true",
        help="exit 0 if a worker of this host is alive, 1 if not (a container health check)",
    )
{%- endif %}
    return commands


def token(user: str, channels: Sequence[str], publish: Sequence[str], ttl: float) -> str:
    """An HS256 token signed with AUTH_SECRET; exits with one line when none is set."""
    if not 0 < ttl < MAX_TTL:
        sys.exit(f"error: token: --ttl must be a number of seconds above 0 and below {MAX_TTL}")
    secret = get_settings().auth_secret
    if secret is None:
        sys.exit("error: token: AUTH_SECRET is not set (the token command signs with it)")
    return mint(
        secret.get_secret_value(),
        user,
        ttl=ttl,
        channels=_split(channels),
        publish=_split(publish),
    )


def _split(patterns: Sequence[str]) -> list[str]:
    return [p.strip() for value in patterns for p in value.split(",") if p.strip()]
{%- if cookiecutter.use_task_queue %}


def work(functions: Iterable[JobFunction] = FUNCTIONS) -> int:
    """Run a worker of `functions` until it is stopped; 0 once it stopped cleanly."""
    settings = _queue_settings()
    if settings.metrics_enabled:
        # Before the worker's first metric, which writes its file there.
        check_directory()
    # SAQ's own lines too (a swept job, a job's traceback), on the same handler.
    logging.config.dictConfig(logging_config(settings.log_level, settings.json_logs, "saq"))
    with exporting(settings):
        asyncio.run(worker.run(settings, functions))
    return 0


def _queue_settings() -> Settings:
    settings = get_settings()
    if settings.redis_url is None:
        sys.exit("error: worker: REDIS_URL is not set (the job queue lives in Redis)")
    return settings


def check_worker() -> int:
    """0 if a worker on this host wrote its health signal lately, else 1 (one line why)."""
    settings = _queue_settings()
    try:
        alive = asyncio.run(worker.healthy(settings))
    except (RedisError, OSError) as exc:
        print(f"unhealthy: Redis did not answer: {masked(str(exc))}", file=sys.stderr)
        return 1
    if not alive:
        print("unhealthy: no worker of this host wrote its health signal lately", file=sys.stderr)
        return 1
    return 0
{%- endif %}


def serve() -> None:
    """Serve the app with uvicorn until it is stopped."""
    settings = get_settings()
    _check_host(settings.host)
    if not settings.metrics_enabled:
        _run(settings)
        return
    # Before the workers start: they inherit the directory and count in it.
    with shared_directory(settings.workers):
        _run(settings)


def _run(settings: Settings) -> None:
    uvicorn.run(
        f"{__package__}.main:app",
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        root_path=settings.root_path,
        log_level=settings.log_level,
        log_config=logging_config(settings.log_level, settings.json_logs),
        # uvicorn's httptools protocol, taking an absolute-form request's host from its target.
        http=PROTOCOL,
        # Without a bound, one client that stops reading holds shutdown open.
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout),
{%- if cookiecutter.use_websockets %}
        # The app enforces the size too; this lets uvicorn refuse a larger frame
        # before reading it whole.
        ws_max_size=settings.ws_max_message_size,
        ws_per_message_deflate=settings.ws_per_message_deflate,
{%- endif %}
    )


def _check_host(host: str) -> None:
    # uvicorn would log "[Errno -2] Name or service not known", naming no setting.
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:  # UnicodeError: a label IDNA cannot encode
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        sys.exit(f"error: HOST: {host!r} is no address or name to listen on ({reason})")


if __name__ == "__main__":
    main()
