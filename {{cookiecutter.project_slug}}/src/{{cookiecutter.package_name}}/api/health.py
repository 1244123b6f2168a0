"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ..deps import ReadinessDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyReport(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, str]
    failing: list[str]


@router.get("/health")
async def health() -> Health:
    """Liveness: the process is up and serving requests."""
    return Health()


@router.get("/ready", response_model=ReadyReport, responses={503: {"model": ReadyReport}})
async def ready(readiness: ReadinessDep) -> JSONResponse:
    """Readiness: 200 when every dependency is usable, else 503 naming the failing checks."""
    checks = await readiness.run()
    failing = sorted(name for name, outcome in checks.items() if outcome != "ok")
    status = "unavailable" if failing else "ready"
    report = ReadyReport(status=status, checks=checks, failing=failing)
    return JSONResponse(report.model_dump(), status_code=503 if failing else 200)
