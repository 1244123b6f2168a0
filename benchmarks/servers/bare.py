"""Bare FastAPI: `/health` answering the service's body, nothing else (the HTTP baseline).

uvicorn bare:app --app-dir benchmarks/servers --port 8004
"""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
