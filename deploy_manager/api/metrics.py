"""`GET /metrics` (read token): Prometheus text format from the app's own registry."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from deploy_manager.api.deps import Ctx, ReadAuth
from deploy_manager.api.schemas import ErrorBody

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, 401: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    summary="Prometheus metrics",
)
def metrics(ctx: Ctx, _: ReadAuth) -> Response:
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
