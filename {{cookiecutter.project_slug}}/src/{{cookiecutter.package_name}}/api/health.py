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
    # Each check by name: "ok" or "failing" (the reason is in the service's log).
    checks: dict[str, Literal["ok", "failing"]]
    failing: list[str]


@router.get("/health")
async def health() -> Health:
    """Liveness: the process is up and serving requests."""
    return Health()


@router.get("/ready", response_model=ReadyReport, responses={503: {"model": ReadyReport}})
async def ready(readiness: ReadinessDep) -> JSONResponse:
    """Readiness: 200 when every dependency is usable, else 503 naming the failing checks.

    Open to anyone, so it names checks only: no hosts, URLs or credentials.
    """
    outcomes = await readiness.run()
    failing = sorted(name for name, outcome in outcomes.items() if outcome != "ok")
    checks: dict[str, Literal["ok", "failing"]] = {
        name: "ok" if outcome == "ok" else "failing" for name, outcome in outcomes.items()
    }
    status = "unavailable" if failing else "ready"
    report = ReadyReport(status=status, checks=checks, failing=failing)
    return JSONResponse(report.model_dump(), status_code=503 if failing else 200)
