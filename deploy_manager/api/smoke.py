"""`GET /smoke` (read token): the latest result of each workflow check of the cluster (issue 14), from the store.

`{name, component, status: passed|failed|slow|error, duration, finished_at, run_id, log_tail}` per check (plus
`sla`, `error` and `job`); `run_id` is null for a check run by `deploy-manager smoke` or on its schedule.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from deploy_manager.api.convert import parse_time
from deploy_manager.api.deps import Ctx, ReadAuth
from deploy_manager.api.schemas import ErrorBody
from deploy_manager.models.smoke import SmokeResult

router = APIRouter(tags=["smoke"])
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (401, 503)}


class SmokeOut(BaseModel):
    name: str
    component: str
    status: Literal["passed", "failed", "slow", "error"]
    duration: float = Field(description="Seconds the check's Job took.")
    finished_at: dt.datetime | None = None
    run_id: int | None = Field(None, description="The run that ran it; null: `deploy-manager smoke` or its schedule.")
    log_tail: str = Field("", description="The end of the Job's log, secrets redacted.")
    sla: float | None = Field(None, description="Seconds; a pass slower than this is `slow` (counted failed).")
    error: str = ""
    job: str = Field("", description="The Job that ran it (smoke-<check>-<suffix>).")


def smoke_out(r: SmokeResult, redact: Any) -> SmokeOut:
    return SmokeOut(
        name=r.name,
        component=r.component,
        status=r.status.value,
        duration=round(r.duration, 3),
        finished_at=parse_time(r.finished_at),
        run_id=r.run_id,
        log_tail=redact.text(r.log_tail),
        sla=r.sla,
        error=redact.text(r.error),
        job=r.job,
    )


def latest(ctx: Any) -> list[SmokeResult]:
    read = getattr(ctx.store, "latest_smoke", None)
    return list(read(ctx.settings.cluster)) if read is not None else []


@router.get("/smoke", response_model=list[SmokeOut], responses=ERRORS, summary="Latest result of each check")
def list_smoke(ctx: Ctx, _: ReadAuth) -> list[SmokeOut]:
    return [smoke_out(r, ctx.redact) for r in latest(ctx)]
