"""`GET /runs`, `GET /runs/{id}` (read token) and `POST /runs` (write token): run history and manual triggers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from fastapi.responses import JSONResponse

from deploy_manager.api.convert import run_detail_out, run_out
from deploy_manager.api.deps import Ctx, ReadAuth, WriteAuth, parse_json, resolve_revision
from deploy_manager.api.schemas import (
    REVISION_PATTERN,
    ErrorBody,
    RunDetailOut,
    RunOut,
    RunRequest,
    RunStatus,
    TriggerResponse,
)

router = APIRouter(tags=["runs"])
READ_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (401, 422, 503)}
MAX_ID = 2**63 - 1  # SQLite INTEGER


@router.get("/runs", response_model=list[RunOut], responses=READ_ERRORS, summary="Runs, newest first")
def list_runs(
    ctx: Ctx,
    _: ReadAuth,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many runs.")] = 50,
    status_: Annotated[RunStatus | None, Query(alias="status", description="Only runs with this status.")] = None,
) -> list[RunOut]:
    # Filtering by status reads a wider window so `limit` still means "up to limit matching runs" mostly.
    runs = ctx.store.list_runs(cluster=ctx.settings.cluster, limit=limit if status_ is None else max(limit, 1000))
    out = [run_out(r, ctx.redact) for r in runs]
    if status_ is not None:
        out = [r for r in out if r.status == status_][:limit]
    return out


@router.get(
    "/runs/{run_id}",
    response_model=RunDetailOut,
    responses={**READ_ERRORS, 404: {"model": ErrorBody}},
    summary="One run with its steps, reasons, durations and helm output tails",
)
def get_run(ctx: Ctx, _: ReadAuth, run_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> RunDetailOut:
    run = ctx.store.get_run(run_id)
    if run is None or run.cluster != ctx.settings.cluster:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"run {run_id} not found")
    return run_detail_out(run, ctx.redact)


@router.post(
    "/runs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TriggerResponse,
    responses={code: {"model": ErrorBody} for code in (400, 401, 403, 413, 415, 422, 503)},
    summary="Trigger a run by hand (the branch head, or a given revision)",
    openapi_extra={
        "requestBody": {"required": False, "content": {"application/json": {"schema": RunRequest.model_json_schema()}}}
    },
)
async def create_run(
    request: Request,
    ctx: Ctx,
    _: WriteAuth,
    rev: Annotated[str | None, Query(pattern=REVISION_PATTERN, description="Revision (instead of the body).")] = None,
) -> JSONResponse:
    body = await parse_json(request, RunRequest, ctx.settings.max_body_bytes)
    revision = (body.revision if body else None) or rev
    if revision == ctx.settings.branch:
        revision = None  # the branch itself: deploy its head as fetched when the run starts
    if revision is not None:
        await resolve_revision(ctx, revision)  # an unknown revision is 422 and queues nothing
    result = ctx.queue.trigger("manual", rev=revision)
    answer = TriggerResponse(run_id=result.run_id, status=result.status, reason=result.reason)
    return JSONResponse(answer.model_dump(), status_code=status.HTTP_202_ACCEPTED)
