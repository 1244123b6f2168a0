"""The baked service's worker with the jobs scenario's jobs: the service's own worker
(`__main__.work`: its settings, hooks and heartbeat), running three more job functions.

- `noop` records when it started, next to the enqueue time it was given;
- `effect` has one side effect per job however often it runs (an idempotency key), and
  takes a little time, so that a killed worker has jobs in flight;
- `probe` answers with its worker's id, so the harness knows every worker takes jobs.

Each pushes to the Redis list the harness names in its argument `into` (SAQ's `enqueue`
takes a Job's fields, `started` or `completed`, from the same keyword arguments, so no job
argument may be named like one). The bake's `src` folder must be on PYTHONPATH; the command's
argument names its package.

    REDIS_URL=redis://127.0.0.1:6379/0 PYTHONPATH=.../src python jobs_worker.py realtime_service
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import time
from typing import Any

# The idempotency key and the effect in one step, so a kill lands before both or after both.
# (A job whose effect lives elsewhere, an e-mail or a payment, checks a key first and sets it
# after, as the service's send_notification does; here the effect is a Redis counter.)
EFFECT_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
    return redis.call('INCR', KEYS[2])
end
return 0
"""


async def noop(ctx: dict[str, Any], *, enqueued: float, into: str) -> None:
    """Push "<enqueued> <started>" to the list `into`: time.time() both, as the harness that
    enqueued runs on the same machine."""
    started = time.time()
    await ctx["redis"].rpush(into, f"{enqueued!r} {started!r}")


async def effect(ctx: dict[str, Any], *, work: float, prefix: str, into: str) -> int:
    """Count one effect per job at `<prefix>:effects:<job id>`, however often it runs,
    halfway through `work` seconds of simulated work (a worker killed meanwhile leaves some
    jobs before their effect and some after it); then push the time to the list `into`.

    As it starts, it pushes this process's id to the list `<prefix>:starts` (the harness
    kills a worker right after one of its jobs started, so it dies with jobs in flight), and
    the hash `<prefix>:running` counts it under that id while it runs.
    """
    job, redis = ctx["job"], ctx["redis"]
    running, pid = f"{prefix}:running", str(os.getpid())
    await redis.hincrby(running, pid, 1)
    await redis.rpush(f"{prefix}:starts", pid)
    await asyncio.sleep(work / 2)  # simulated work
    keys = (f"{prefix}:done:{job.key}", f"{prefix}:effects:{job.key}")
    await redis.eval(EFFECT_ONCE, 2, *keys, ctx["settings"].job_result_ttl)
    await asyncio.sleep(work / 2)  # simulated work
    await redis.hincrby(running, pid, -1)
    await redis.rpush(into, repr(time.time()))
    attempts: int = job.attempts
    return attempts


async def probe(ctx: dict[str, Any], *, into: str) -> None:
    """Push this worker's id to the list `into`: the harness enqueues probes until every
    worker has answered one, so each takes jobs before anything is timed."""
    await ctx["redis"].rpush(into, ctx["worker"].id)


def main(package: str) -> None:
    work = importlib.import_module(f"{package}.__main__").work
    functions = importlib.import_module(f"{package}.tasks.jobs").FUNCTIONS
    sys.exit(work((*functions, noop, effect, probe)))


if __name__ == "__main__":
    main(sys.argv[1])
