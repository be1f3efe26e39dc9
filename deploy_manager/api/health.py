"""`GET /healthz` (the process answers) and `GET /readyz` (the process and its store can serve).

Readiness depends on the process and the store only: with one replica, a GitHub or API-server outage must not
take the webhook endpoint and the status page out of the Service (webhooks queue; the run then reports the
outage). The Kubernetes API and the git mirror are still checked on every probe: reported in the body
(`checks`) and as `deploy_manager_dependency_up{dependency=…}`.
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
    if checks["git"] == "ok" and q.last_fetch_error:
        checks["git"] = ctx.redact.cut(f"error: last fetch failed: {q.last_fetch_error}", CHECK_CHARS)
    for name, value in checks.items():
        ctx.metrics.dependency_up.labels(name).set(1 if value == "ok" else 0)
    ready = checks["store"] == "ok"  # git and the API are reported, never a reason to leave the Service
    if q.stopping:  # draining after SIGTERM: leave the Service's endpoints (triggers would get 503 anyway)
        checks["queue"] = "draining: the service is shutting down"
        ready = False
    body = ReadyOut(status="ready" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
