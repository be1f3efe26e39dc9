"""`create_app(settings, *, ...)`: the FastAPI service, wired from one `Settings`.

Contract:
- Collaborators are keyword-only so tests pass their own: `pipeline`, `store`, `source`, `lease`, `kube_ping`,
  `metrics`. What is not passed is built from the settings: the real `Pipeline` (HelmRunner on
  `DM_HELM_BIN`, KubeClient on `DM_KUBECONFIG`/in-cluster), the SQLite `RunStore` in `DM_STATE_DIR`, the
  `GitSource` mirror of `DM_REPO_URL` (created lazily by the worker), and the per-cluster Lease.
  `lease=None` disables the Lease (single-instance tests); the default builds the Kubernetes one (when
  there is a kubeconfig or an in-cluster config).
- Nothing starts at construction: the lifespan starts the run queue's worker and the scheduler, and on
  shutdown stops taking triggers and lets a running helm command finish.
- Every error is a JSON body `{"detail": ...}`: 4xx for bad requests (with the body-size limit enforced
  before the body is read when Content-Length says so), 500 with no internals for a bug.
- `/docs` and `/redoc` are off unless `DM_API_DOCS=true`, and then load their scripts from this package
  (fastapi-offline's copies), never from a CDN. `/openapi.json` is always served.
- Every answer carries `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, `X-Frame-Options:
  DENY`, `Cache-Control: no-store` and a `Content-Security-Policy` that allows nothing (pages that need
  more, the status page and the docs, set their own).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import ProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deploy_manager import __version__
from deploy_manager.api import health, hooks, plan, releases, run_page, runs, status_page
from deploy_manager.api import metrics as metrics_api
from deploy_manager.api import smoke as smoke_api
from deploy_manager.api import suspend as suspend_api
from deploy_manager.api.auth import TokenAuth
from deploy_manager.api.deps import AppContext, Redactor
from deploy_manager.config import Settings
from deploy_manager.drift_monitor import DriftMonitor
from deploy_manager.lease import ClusterLease, KubernetesLeaseBackend
from deploy_manager.liveness import HolderLiveness, HostFacts
from deploy_manager.metrics import ServiceMetrics
from deploy_manager.models.errors import QueueStopping
from deploy_manager.notify import RunNotifier, build_notifier
from deploy_manager.retry import RunRetryPolicy
from deploy_manager.scheduler import ServiceScheduler
from deploy_manager.service import PipelineLike, RunQueue, SourceLike, StoreLike

if TYPE_CHECKING:
    from deploy_manager.bootstrap.manifests import JobPodPolicy
    from deploy_manager.kube.suspend import SuspendStore

log = logging.getLogger(__name__)


class _Auto:
    """Default for collaborators built from the settings (distinct from an explicit None)."""


AUTO: Any = _Auto()


class ContentLengthLimit:
    """Answer 413 before reading a body whose Content-Length is over the limit (streamed bodies are
    counted by `deps.read_body`)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for key, value in scope["headers"]:
                if key == b"content-length":
                    try:
                        size = int(value)
                    except ValueError:
                        await _send_json(send, 400, "invalid Content-Length header")
                        return
                    if size > self.limit:
                        await _send_json(send, 413, f"request body over {self.limit} bytes")
                        return
        await self.app(scope, receive, send)


SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
)
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:;"
    " connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
DOCS_STATIC = "/docs-static"
NOTIFY_FLUSH_SECONDS = 10.0  # at shutdown, queued commit statuses get this long to go out


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every answer that does not set the header itself (the status page and the docs
    send their own Content-Security-Policy)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {key.lower() for key, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def add_docs(app: FastAPI) -> None:
    """`/docs` (Swagger UI) and `/redoc` with their assets served from the package (DM_API_DOCS=true)."""
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    try:
        import fastapi_offline
    except ImportError as exc:  # a dependency of the package: only a broken install lacks it
        raise RuntimeError("DM_API_DOCS=true needs the fastapi-offline package (its bundled assets)") from exc
    static = Path(fastapi_offline.__file__).parent / "static"
    app.mount(DOCS_STATIC, StaticFiles(directory=static), name="docs-static")
    headers = {"Content-Security-Policy": DOCS_CSP}

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title}: API",
            swagger_js_url=f"{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_STATIC}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},  # else a badge from validator.swagger.io
        )
        return HTMLResponse(bytes(page.body), headers=headers)

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title}: API",
            redoc_js_url=f"{DOCS_STATIC}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_STATIC}/favicon.png",
            with_google_fonts=False,
        )
        return HTMLResponse(bytes(page.body), headers=headers)


async def _send_json(send: Send, status: int, detail: str) -> None:
    response = JSONResponse({"detail": detail}, status_code=status, headers={"connection": "close"})
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


def job_pod_policy(settings: Settings) -> JobPodPolicy:
    """Bootstrap Job pods: the restricted defaults, each part replaced by its DM_JOB_* setting when given."""
    from deploy_manager.bootstrap.manifests import JobPodPolicy

    given = {
        "pod_security_context": settings.job_pod_security_context,
        "security_context": settings.job_security_context,
        "resources": settings.job_resources,
    }
    return JobPodPolicy(**{k: v for k, v in given.items() if v is not None})


def build_lease(settings: Settings) -> tuple[ClusterLease, Callable[[], None]]:
    backend = KubernetesLeaseBackend(
        name=settings.effective_lease_name,
        namespace=settings.lease_namespace,
        kubeconfig=settings.kubeconfig,
        context=settings.kube_context,
    )
    # The holder's pod is looked up in the pod's own namespace (the Lease's by default).
    pod_namespace = os.environ.get("POD_NAMESPACE") or settings.lease_namespace
    lease = ClusterLease(
        backend,
        identity=settings.identity,
        duration_seconds=settings.lease_duration_seconds,
        renew_seconds=settings.lease_renew_seconds,
        liveness=HolderLiveness(HostFacts.read(), lambda name: backend.pod_exists(name, pod_namespace)),
    )
    return lease, backend.ping


def suspend_store(settings: Settings, pipeline: Any) -> SuspendStore | None:
    """The suspend ConfigMap next to the Lease (issue 13), on the pipeline's Kubernetes client (or one of its
    own for a caller-supplied pipeline); None without a cluster."""
    from deploy_manager.kube.client import KubeClient
    from deploy_manager.kube.suspend import SuspendStore

    kube = getattr(pipeline, "kube", None)
    if not isinstance(kube, KubeClient):
        if settings.kubeconfig is None and not os.environ.get("KUBERNETES_SERVICE_HOST"):
            return None
        kube = KubeClient(kubeconfig=settings.kubeconfig, context=settings.kube_context)
    return SuspendStore(kube, cluster=settings.cluster, namespace=settings.lease_namespace)


def create_app(
    settings: Settings,
    *,
    pipeline: PipelineLike | None = None,
    store: StoreLike | None = None,
    source: SourceLike | None = None,
    lease: ClusterLease | None = AUTO,
    kube_ping: Callable[[], None] | None = None,
    metrics: ServiceMetrics | None = None,
    notifier: RunNotifier | None = AUTO,
) -> FastAPI:
    metrics = metrics or ServiceMetrics()
    metrics.registry.register(ProcessCollector(registry=None))
    if store is None:
        from deploy_manager.store.sqlite import RunStore

        store = RunStore(settings.db_path, redact=Redactor(settings.secret_values()))
    if pipeline is None:
        from deploy_manager.wiring import build_pipeline

        real = build_pipeline(  # wired like the CLI's
            helm_bin=settings.helm_bin,
            kubeconfig=settings.kubeconfig,
            kube_context=settings.kube_context,
            store=store,  # type: ignore[arg-type]  # the real pipeline is only built over the real store
            state_dir=settings.state_dir,
            max_parallel=settings.max_parallel,
            metrics=metrics,
            namespaces=settings.namespaces or None,
            pod_policy=job_pod_policy(settings),
            suspend_namespace=settings.lease_namespace,
            self_release=settings.own_release,
            smoke_after_run=settings.smoke_after_run,
        )
        pipeline, kube_ping = real, kube_ping or real.kube.ping
    if lease is AUTO:
        if settings.kubeconfig is None and not os.environ.get("KUBERNETES_SERVICE_HOST"):
            # Only reachable with a caller-supplied pipeline: the real one needs a cluster config too.
            log.warning("no kubeconfig and not in a cluster: running without the cluster Lease")
            lease = None
        else:
            lease, ping = build_lease(settings)
            kube_ping = kube_ping or ping

    if notifier is AUTO:  # commit statuses / notifications when configured (issue 14)
        notifier = build_notifier(settings, store=store, metrics=metrics)

    def make_source() -> SourceLike:
        from deploy_manager.source.git import GitSource

        return GitSource(settings.repo_url, mirror_dir=settings.mirror_dir, credentials=settings.git_credentials())

    queue = RunQueue(
        cluster=settings.cluster,
        branch=settings.branch,
        pipeline=pipeline,
        store=store,
        source=source,
        source_factory=None if source is not None else make_source,
        lease=lease,
        metrics=metrics,
        grace_seconds=settings.shutdown_grace_seconds,
        quiet_seconds=settings.trigger_quiet_seconds,
        max_delay_seconds=settings.trigger_max_delay_seconds,
        retry=RunRetryPolicy(
            initial=settings.retry_initial_seconds,
            maximum=settings.retry_max_seconds,
            attempts=settings.retry_attempts,
            failed_interval=settings.retry_failed_interval_seconds,
            failed_max=settings.retry_failed_max,
        ),
        supersede=settings.supersede,
        handover_wait_seconds=settings.self_handover_wait_seconds,
        observer=notifier,
    )
    drift_monitor = DriftMonitor(queue, cluster=settings.cluster)
    if settings.drift_interval_seconds > 0:
        queue.after_run = drift_monitor.after_run
    metrics.watch_drift(drift_monitor.drifted)
    scheduler = ServiceScheduler(
        queue,
        poll_interval=settings.poll_interval_seconds,
        poll_jitter=settings.effective_poll_jitter,
        observe_interval=settings.observe_interval_seconds,
        smoke_interval=settings.smoke_tick_seconds,
        drift_interval=settings.drift_interval_seconds,
        drift_check=drift_monitor.periodic,
    )
    metrics.watch_smoke(settings.cluster, lambda: getattr(store, "latest_smoke", lambda _cluster: [])(settings.cluster))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if notifier is not None:
            notifier.start()
        queue.start()
        scheduler.start()
        where = f"{settings.redacted_repo_url}@{settings.branch}"
        log.info("deploy-manager serving cluster %s from %s", settings.cluster, where)
        try:
            yield
        finally:
            scheduler.shutdown()
            queue.stop()
            if notifier is not None:  # the last run's status still goes out, within a short deadline
                notifier.stop(NOTIFY_FLUSH_SECONDS)

    app = FastAPI(
        title="deploy-manager",
        version=__version__,
        description="GitOps deploy manager for the OpenStack control plane: webhooks, runs, releases.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's own pages load their scripts from a CDN: see add_docs
        redoc_url=None,
    )
    if settings.api_docs:
        add_docs(app)
    app.state.dm = AppContext(
        settings=settings,
        queue=queue,
        store=store,
        pipeline=pipeline,
        metrics=metrics,
        auth=TokenAuth(settings.read_tokens, settings.write_tokens),
        kube_ping=kube_ping,
        redact=Redactor(settings.secret_values()),
    )
    app.state.scheduler = scheduler
    suspend_api.build_state(app, suspend_store(settings, pipeline))
    app.state.drift = drift_monitor
    queue.drift_monitor = drift_monitor  # /releases and the status page read its last report

    def drain() -> None:
        """SIGTERM (see `deploy_manager.commands.serve_cmd`): while the HTTP server keeps answering (503 to new
        triggers), stop polling and drain the run queue; the Lease is released as the run ends."""
        scheduler.shutdown()
        queue.stop()
        if notifier is not None:
            notifier.stop(NOTIFY_FLUSH_SECONDS)

    app.state.drain = drain
    app.state.notifier = notifier
    app.add_middleware(run_page.HtmlRunNegotiation)  # a browser's GET /runs/{id} gets the HTML run page
    app.add_middleware(ContentLengthLimit, limit=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)  # outermost: the 413/400 answers of ContentLengthLimit get them too

    @app.exception_handler(QueueStopping)
    async def stopping(request: Request, exc: QueueStopping) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "30"})

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s %s: %s", request.method, request.url.path, type(exc).__name__, exc_info=exc)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    for module in (hooks, runs, releases, plan, health, metrics_api, status_page, suspend_api, smoke_api, run_page):
        app.include_router(module.router)
    return app
