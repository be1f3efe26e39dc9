"""`GET /releases` and `GET /releases/{name}` (read token): what is deployed, served from the store."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status

from deploy_manager.api.convert import release_out
from deploy_manager.api.deps import AppContext, Ctx, ReadAuth
from deploy_manager.api.schemas import ErrorBody, ReleaseOut

router = APIRouter(tags=["releases"])
NAME = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"  # DNS subdomain: release and component names
HELM_STATUS = r"^[a-z][a-z-]{0,31}$"
ERRORS: dict[int | str, dict[str, Any]] = {401: {"model": ErrorBody}, 422: {"model": ErrorBody}}


def _releases(ctx: AppContext) -> list[ReleaseOut]:
    return [
        release_out(r, ctx.queue.last_run_for(r.namespace, r.release))
        for r in ctx.store.list_releases(ctx.settings.cluster)
    ]


@router.get("/releases", response_model=list[ReleaseOut], responses=ERRORS, summary="Releases of the cluster")
def list_releases(
    ctx: Ctx,
    _: ReadAuth,
    component: Annotated[str | None, Query(pattern=NAME, description="Only this component.")] = None,
    status_: Annotated[
        str | None, Query(alias="status", pattern=HELM_STATUS, description="Only this helm status.")
    ] = None,
) -> list[ReleaseOut]:
    out = _releases(ctx)
    if component is not None:
        out = [r for r in out if r.component == component]
    if status_ is not None:
        out = [r for r in out if r.status == status_]
    return out


@router.get(
    "/releases/{name}",
    response_model=ReleaseOut,
    responses={**ERRORS, 404: {"model": ErrorBody}},
    summary="One release, by release name or component name",
)
def get_release(ctx: Ctx, _: ReadAuth, name: Annotated[str, Path(pattern=NAME)]) -> ReleaseOut:
    releases = _releases(ctx)
    for match in ([r for r in releases if r.release == name], [r for r in releases if r.component == name]):
        if match:
            return match[0]
    raise HTTPException(
        status.HTTP_404_NOT_FOUND, detail=f"release {name!r} not found in cluster {ctx.settings.cluster}"
    )
