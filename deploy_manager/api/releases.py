"""`GET /releases` and `GET /releases/{name}` (read token): what is deployed, served from the store.

Served from an in-memory snapshot of the store (`api/cache.py`), refreshed after every run and observe;
reads never shell out to helm and normally do not touch the database either.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from deploy_manager.api.cache import RELEASE_LIST
from deploy_manager.api.deps import Ctx, ReadAuth
from deploy_manager.api.schemas import ErrorBody, ReleaseOut

router = APIRouter(tags=["releases"])
NAME = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"  # DNS subdomain: release and component names
HELM_STATUS = r"^[a-z][a-z-]{0,31}$"
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (401, 422, 503)}


@router.get("/releases", response_model=list[ReleaseOut], responses=ERRORS, summary="Releases of the cluster")
async def list_releases(
    ctx: Ctx,
    _: ReadAuth,
    component: Annotated[str | None, Query(pattern=NAME, description="Only this component.")] = None,
    status_: Annotated[
        str | None, Query(alias="status", pattern=HELM_STATUS, description="Only this helm status.")
    ] = None,
) -> Response:
    snap = ctx.releases_cache.get(ctx.queue, ctx.store, ctx.settings.cluster)
    if component is None and status_ is None:
        return Response(snap.body, media_type="application/json")
    out = [
        r
        for r in snap.releases
        if (component is None or r.component == component) and (status_ is None or r.status == status_)
    ]
    return Response(RELEASE_LIST.dump_json(out), media_type="application/json")


@router.get(
    "/releases/{name}",
    response_model=ReleaseOut,
    responses={**ERRORS, 404: {"model": ErrorBody}},
    summary="One release, by release name or component name",
)
async def get_release(ctx: Ctx, _: ReadAuth, name: Annotated[str, Path(pattern=NAME)]) -> ReleaseOut:
    releases = ctx.releases_cache.get(ctx.queue, ctx.store, ctx.settings.cluster).releases
    for match in ([r for r in releases if r.release == name], [r for r in releases if r.component == name]):
        if match:
            return match[0]
    raise HTTPException(
        status.HTTP_404_NOT_FOUND, detail=f"release {name!r} not found in cluster {ctx.settings.cluster}"
    )
