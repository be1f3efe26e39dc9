"""`GET /healthz` (the process answers) and `GET /readyz` (store, Kubernetes API and git mirror usable).

Both are unauthenticated (kubelet probes); they reveal nothing but which dependency is down.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from deploy_manager.api.deps import AppContext, Ctx
from deploy_manager.api.schemas import HealthOut, ReadyOut

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut)
def healthz() -> HealthOut:
    return HealthOut()


CHECK_CHARS = 200  # a probe's answer stays short; cut only after masking (the remote URL may carry a token)


def _check(fn: object, ctx: AppContext) -> str:
    try:
        fn()  # type: ignore[operator]
    except Exception as exc:
        return ctx.redact.cut(f"error: {type(exc).__name__}: {exc}", CHECK_CHARS)
    return "ok"


@router.get("/readyz", response_model=ReadyOut, responses={503: {"model": ReadyOut}})
def readyz(ctx: Ctx) -> JSONResponse:
    q = ctx.queue
    checks = {
        "store": _check(lambda: ctx.store.list_runs(cluster=ctx.settings.cluster, limit=1), ctx),
        "kubernetes": _check(ctx.kube_ping, ctx) if ctx.kube_ping is not None else "ok",
        # Local only: the mirror resolves the branch; a failing fetch is reported, not retried per probe.
        "git": _check(lambda: q.source.resolve(ctx.settings.branch), ctx),
    }
    if q.stopping:  # draining after SIGTERM: take this instance out of the Service's endpoints
        checks["queue"] = "draining: the service is shutting down"
    if checks["git"] == "ok" and q.last_fetch_error:
        checks["git"] = ctx.redact.cut(f"error: last fetch failed: {q.last_fetch_error}", CHECK_CHARS)
    ready = all(v == "ok" for v in checks.values())
    body = ReadyOut(status="ready" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
