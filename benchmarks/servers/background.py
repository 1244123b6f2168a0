"""BackgroundTasks: FastAPI's in-process background work, running the jobs scenario's no-op job.

`POST /jobs?enqueued=<time.time()>` answers 202 and schedules the no-op with `BackgroundTasks`
(https://fastapi.tiangolo.com/tutorial/background-tasks/): it runs in this process after the
response is sent, and records when it started next to its enqueue time, as the queue's no-op
job does (`jobs_worker.py`). `GET /started?count=N` answers once N have started (or after
`timeout` seconds) with every "[enqueued, started]" pair, and forgets them.

    uvicorn background:app --app-dir benchmarks/servers --port 8005
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from fastapi import BackgroundTasks, FastAPI

app = FastAPI()
started: list[tuple[float, float]] = []
wanted = 0
enough = asyncio.Event()


async def noop(enqueued: float) -> None:
    # async, as the queue's job is: a plain `def` would run in the thread pool.
    started.append((enqueued, time.time()))
    if wanted and len(started) >= wanted:
        enough.set()


@app.post("/jobs", status_code=202)
async def schedule(enqueued: float, background_tasks: BackgroundTasks) -> None:
    background_tasks.add_task(noop, enqueued)


@app.get("/started")
async def collect(count: int, timeout: float = 60.0) -> list[tuple[float, float]]:
    global wanted
    wanted = count
    if len(started) < count:
        enough.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(enough.wait(), timeout)
    pairs = started.copy()
    started.clear()
    wanted = 0
    return pairs
