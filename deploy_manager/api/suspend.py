"""`POST /suspend`, `POST /resume` (write token) and `GET /suspend` (read token): freeze a component or the
whole cluster during an incident (issue 13).

Body `{"component": "X" | null, "reason": "…"}` (null or no body: the whole cluster). The suspension is
written to the cluster's suspend ConfigMap next to its Lease (`deploy_manager.kube.suspend`), which every
run reads once: it applies from the next run (a running run finishes with what it planned). A resume
queues a run (trigger `resume`), so what waited is deployed without waiting for a push.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, FastAPI, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from deploy_manager.api.deps import AppContext, Ctx, ReadAuth, WriteAuth, parse_json
from deploy_manager.api.schemas import ErrorBody
from deploy_manager.kube.suspend import SuspendStore
from deploy_manager.models.errors import DeployManagerError, QueueStopping
from deploy_manager.models.suspend import Suspensions

router = APIRouter(tags=["suspend"])
_T = TypeVar("_T")
CACHE_SECONDS = 5.0  # the status page reads the ConfigMap at most this often
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 413, 415, 422, 503)
}

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class SuspendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    component: Annotated[str, Field(pattern=_DNS_LABEL, max_length=53)] | None = Field(
        None, description="The component; null: the whole cluster."
    )
    reason: str = Field("", max_length=1024, description="Why (shown in plans, /releases and the status page).")


class SuspensionOut(BaseModel):
    component: str | None
    by: str
    reason: str
    at: str
    source: str
    message: str


class SuspendResponse(BaseModel):
    suspension: SuspensionOut | None = Field(description="The suspension set (suspend) or lifted (resume).")
    run_id: int | None = Field(None, description="resume: the run queued to deploy what waited.")
    message: str = ""


class SuspensionsOut(BaseModel):
    cluster: SuspensionOut | None
    components: dict[str, SuspensionOut]


class SuspendState:
    """The app's view of the suspend ConfigMap: its store (None without a cluster) and a short-lived copy."""

    def __init__(self, store: SuspendStore | None) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._cached: tuple[float, Suspensions] | None = None

    def current(self, *, fresh: bool = False) -> Suspensions:
        if self.store is None:
            return Suspensions()
        with self._lock:
            if not fresh and self._cached is not None and time.monotonic() - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
        found = self.store.read()
        with self._lock:
            self._cached = (time.monotonic(), found)
        return found

    def forget(self) -> None:
        with self._lock:
            self._cached = None


def build_state(app: FastAPI, store: SuspendStore | None) -> None:
    app.state.suspend = SuspendState(store)


def _state(request: Request) -> SuspendState:
    state = getattr(request.app.state, "suspend", None)
    if not isinstance(state, SuspendState) or state.store is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="suspensions need a Kubernetes cluster")
    return state


def _out(s: Any) -> SuspensionOut | None:
    return None if s is None else SuspensionOut(**s.to_dict())


async def _body(request: Request, ctx: AppContext) -> SuspendRequest:
    return await parse_json(request, SuspendRequest, ctx.settings.max_body_bytes) or SuspendRequest(
        component=None, reason=""
    )


def _unavailable(exc: DeployManagerError, ctx: AppContext) -> HTTPException:
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=ctx.redact(str(exc)))


async def _change(
    request: Request, ctx: AppContext, change: Callable[[SuspendStore, SuspendRequest], _T]
) -> tuple[SuspendRequest, SuspendStore, _T]:
    """POST /suspend and /resume: read the body, make the change in the ConfigMap (503 if the cluster says no),
    drop the cached suspensions so the next read sees it."""
    body = await _body(request, ctx)
    state = _state(request)
    store = state.store
    assert store is not None
    try:
        result = await run_in_threadpool(change, store, body)
    except DeployManagerError as exc:
        raise _unavailable(exc, ctx) from exc
    state.forget()
    return body, store, result


@router.get("/suspend", response_model=SuspensionsOut, summary="The suspensions in the cluster's suspend ConfigMap")
async def get_suspensions(request: Request, ctx: Ctx, _: ReadAuth) -> SuspensionsOut:
    state = _state(request)
    try:
        found = await run_in_threadpool(state.current, fresh=True)
    except DeployManagerError as exc:
        raise _unavailable(exc, ctx) from exc
    return SuspensionsOut(
        cluster=_out(found.cluster),
        components={n: _out(s) for n, s in found.components.items()},  # type: ignore[misc]
    )


@router.post(
    "/suspend",
    response_model=SuspendResponse,
    responses=WRITE_ERRORS,
    summary="Freeze a component (or the whole cluster): from the next run it is planned `suspended`, never written",
)
async def suspend(request: Request, ctx: Ctx, _: WriteAuth) -> SuspendResponse:
    body, _store, done = await _change(
        request, ctx, lambda store, body: store.suspend(body.component, by="api", reason=body.reason, source="api")
    )
    return SuspendResponse(suspension=_out(done), run_id=None, message=f"{done.describe()}; applies from the next run")


@router.post(
    "/resume",
    response_model=SuspendResponse,
    responses=WRITE_ERRORS,
    summary="Lift a suspension set by POST /suspend or the CLI, and queue a run to deploy what waited",
)
async def resume(request: Request, ctx: Ctx, _: WriteAuth) -> SuspendResponse:
    body, store, lifted = await _change(request, ctx, lambda store, body: store.resume(body.component))
    what = "cluster" if body.component is None else f"component {body.component}"
    if lifted is None:
        return SuspendResponse(suspension=None, run_id=None, message=f"{what} was not suspended in {store.where}")
    run_id = None
    with contextlib.suppress(QueueStopping):  # shutting down: the next start-up re-plans anyway
        run_id = ctx.queue.trigger("resume", force=True).run_id
    return SuspendResponse(suspension=_out(lifted), run_id=run_id, message=f"resumed {what}")
