"""`GET /plan?rev=` (read token): what a run would do now. Reads git and the release records, never writes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from deploy_manager.api.convert import plan_out
from deploy_manager.api.deps import Ctx, ReadAuth
from deploy_manager.api.schemas import REVISION_PATTERN, ErrorBody, PlanOut
from deploy_manager.models.errors import DeployManagerError, UnknownRevision
from deploy_manager.plan_diff import ComponentDiff

router = APIRouter(tags=["plan"])


@router.get(
    "/plan",
    response_model=PlanOut,
    responses={code: {"model": ErrorBody} for code in (401, 422, 503)},
    summary="The plan for a revision (default: the branch head in the mirror)",
)
def get_plan(
    ctx: Ctx,
    _: ReadAuth,
    rev: Annotated[str | None, Query(pattern=REVISION_PATTERN, description="Branch, tag or commit.")] = None,
    diff: Annotated[
        bool, Query(description="Per component written: the deployed manifest against the new render.")
    ] = False,
) -> PlanOut:
    rev = rev or ctx.settings.branch
    diffs: list[ComponentDiff] | None = None
    try:
        if diff:
            plan, diffs = ctx.pipeline.plan_diff(ctx.queue.source, ctx.settings.cluster, rev)
        else:
            plan = ctx.pipeline.plan(ctx.queue.source, ctx.settings.cluster, rev)
    except UnknownRevision as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=ctx.redact(str(exc))) from exc
    except DeployManagerError as exc:
        # A temporary problem (cluster or remote unreachable) is ours; bad values at that revision are not.
        code = status.HTTP_503_SERVICE_UNAVAILABLE if exc.temporary else status.HTTP_422_UNPROCESSABLE_CONTENT
        raise HTTPException(code, detail=ctx.redact(str(exc))) from exc
    return plan_out(plan, rev, diffs)
