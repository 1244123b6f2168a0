"""`python -m tests.worker_jobs`: the service's worker, plus jobs that misbehave on purpose.

It is the real worker (`__main__.work`: the same settings, hooks and
heartbeat), so the queue tests see what a deployed worker does. The notification
provider writes each send to the file LEDGER names, one line per send, so
a test counts effects across processes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from {{ cookiecutter.package_name }}.__main__ import work
{%- if cookiecutter.use_background_tasks %}
from {{ cookiecutter.package_name }}.tasks import notifications
{%- endif %}
from {{ cookiecutter.package_name }}.tasks.context import JobContext
from {{ cookiecutter.package_name }}.tasks.jobs import FUNCTIONS

logger = logging.getLogger("{{ cookiecutter.package_name }}.tests")


def record(line: str) -> None:
    """Append `line` to the ledger: one write, so lines of two processes never mix."""
    with Path(os.environ["LEDGER"]).open("a") as ledger:
        ledger.write(line + "\n")


async def effect(ctx: JobContext, *, name: str) -> dict[str, Any]:
    """Has its effect (a ledger line) once per job, however often it runs, as jobs should;
    in a worker started with HANG=1 it then hangs, as a worker that dies mid-job leaves it."""
    job, redis = ctx["job"], ctx["redis"]
    done = ctx["settings"].redis_key("effect", job.key)
    if not await redis.exists(done):
        record(f"effect {name}")
        await redis.set(done, "1", ex=ctx["settings"].job_idempotency_ttl)
    if os.environ.get("HANG"):
        logger.info("effect %s: had its effect, now hangs", job.key)
        await asyncio.Event().wait()
    return {"attempt": job.attempts}


async def fail(ctx: JobContext, *, succeed_on: int = 0) -> dict[str, Any]:
    """Raises on every attempt before `succeed_on` (0: on every attempt)."""
    attempt = ctx["job"].attempts
    if succeed_on == 0 or attempt < succeed_on:
        raise RuntimeError(f"boom on attempt {attempt}")
    return {"attempt": attempt}


async def blocky(ctx: JobContext, *, seconds: float) -> dict[str, Any]:
    """On its first attempt, blocks its worker's event loop `seconds`: a worker alive
    but silent, as one stuck in a blocking call is."""
    job = ctx["job"]
    if job.attempts == 1:
        logger.info("blocky %s: blocking", job.key)
        time.sleep(seconds)  # noqa: ASYNC251 (the point: nothing else of this worker runs)
    return {"attempt": job.attempts}


async def echo(ctx: JobContext, **arguments: Any) -> dict[str, Any]:
    """Its arguments, as it received them."""
    return arguments


async def gated(ctx: JobContext, *, gate: str) -> str:
    """Runs until the test pushes to the Redis list `gate`."""
    redis = ctx["redis"]
    logger.info("gated %s: waiting at %s", ctx["job"].key, gate)
    # BLPOP blocks in Redis; each call is shorter than the client's socket timeout.
    while await redis.blpop([gate], timeout=0.5) is None:
        pass
    return "through"


{%- if cookiecutter.use_background_tasks %}


def sent(recipient: str, message: str, idempotency_key: str) -> None:
    """The notification provider of these tests: a ledger line per send."""
    record(f"sent {recipient} {message}")
{%- endif %}


def main() -> None:
{%- if cookiecutter.use_background_tasks %}
    notifications.send_with_provider = sent
{%- endif %}
    sys.exit(work((*FUNCTIONS, blocky, echo, effect, fail, gated)))


if __name__ == "__main__":
    main()
