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
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import ProcessCollector
from starlette.types import ASGIApp, Receive, Scope, Send

from deploy_manager import __version__
from deploy_manager.api import health, hooks, plan, releases, runs, status_page
from deploy_manager.api import metrics as metrics_api
from deploy_manager.api.auth import TokenAuth
from deploy_manager.api.deps import AppContext, Redactor
from deploy_manager.config import Settings
from deploy_manager.lease import ClusterLease, KubernetesLeaseBackend
from deploy_manager.metrics import ServiceMetrics
from deploy_manager.scheduler import ServiceScheduler
from deploy_manager.service import PipelineLike, QueueStopping, RunQueue, SourceLike, StoreLike

if TYPE_CHECKING:
    from deploy_manager.bootstrap.manifests import JobPodPolicy

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


async def _send_json(send: Send, status: int, detail: str) -> None:
    response = JSONResponse({"detail": detail}, status_code=status, headers={"connection": "close"})
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


def build_pipeline(settings: Settings, store: Any, metrics: ServiceMetrics) -> tuple[PipelineLike, Callable[[], None]]:
    """The real Pipeline and a readiness probe of its Kubernetes API."""
    from deploy_manager.bootstrap.engine import BootstrapEngine
    from deploy_manager.helm.runner import HelmResult, HelmRunner
    from deploy_manager.kube.client import KubeClient
    from deploy_manager.pipeline import Pipeline

    class MeteredHelmRunner(HelmRunner):
        """Times every helm command for the `deploy_manager_helm_command_duration_seconds` histogram."""

        def run(self, args: list[str], **kwargs: Any) -> HelmResult:
            timer = metrics.helm_duration.labels(args[0] if args else "helm").time()
            with timer:
                return super().run(args, **kwargs)

    kube = KubeClient(
        kubeconfig=settings.kubeconfig, context=settings.kube_context, namespaces=settings.namespaces or None
    )
    helm = MeteredHelmRunner(settings.helm_bin, kubeconfig=settings.kubeconfig, kube_context=settings.kube_context)
    # Wired like the CLI's pipeline (commands/core_cmds.py): bootstrap steps run as Jobs around each upgrade.
    pipeline = Pipeline(
        helm=helm,
        kube=kube,
        store=store,
        max_parallel=settings.max_parallel,
        hook=BootstrapEngine(helm=helm, kube=kube, store=store, pod_policy=job_pod_policy(settings)),
        cache_dir=settings.state_dir / "charts",
    )
    return pipeline, kube.ping


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
    lease = ClusterLease(
        backend,
        identity=settings.identity,
        duration_seconds=settings.lease_duration_seconds,
        renew_seconds=settings.lease_renew_seconds,
    )
    return lease, backend.ping


def create_app(
    settings: Settings,
    *,
    pipeline: PipelineLike | None = None,
    store: StoreLike | None = None,
    source: SourceLike | None = None,
    lease: ClusterLease | None = AUTO,
    kube_ping: Callable[[], None] | None = None,
    metrics: ServiceMetrics | None = None,
) -> FastAPI:
    metrics = metrics or ServiceMetrics()
    metrics.registry.register(ProcessCollector(registry=None))
    if store is None:
        from deploy_manager.store.sqlite import RunStore

        store = RunStore(settings.db_path)
    if pipeline is None:
        pipeline, ping = build_pipeline(settings, store, metrics)
        kube_ping = kube_ping or ping
    if lease is AUTO:
        if settings.kubeconfig is None and not os.environ.get("KUBERNETES_SERVICE_HOST"):
            # Only reachable with a caller-supplied pipeline: the real one needs a cluster config too.
            log.warning("no kubeconfig and not in a cluster: running without the cluster Lease")
            lease = None
        else:
            lease, ping = build_lease(settings)
            kube_ping = kube_ping or ping

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
    )
    scheduler = ServiceScheduler(
        queue,
        poll_interval=settings.poll_interval_seconds,
        poll_jitter=settings.effective_poll_jitter,
        observe_interval=settings.observe_interval_seconds,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        queue.start()
        scheduler.start()
        where = f"{settings.redacted_repo_url}@{settings.branch}"
        log.info("deploy-manager serving cluster %s from %s", settings.cluster, where)
        try:
            yield
        finally:
            scheduler.shutdown()
            queue.stop()

    app = FastAPI(
        title="deploy-manager",
        version=__version__,
        description="GitOps deploy manager for the OpenStack control plane: webhooks, runs, releases.",
        lifespan=lifespan,
    )
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
    app.add_middleware(ContentLengthLimit, limit=settings.max_body_bytes)

    @app.exception_handler(QueueStopping)
    async def stopping(request: Request, exc: QueueStopping) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "30"})

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s %s: %s", request.method, request.url.path, type(exc).__name__, exc_info=exc)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    for module in (hooks, runs, releases, plan, health, metrics_api, status_page):
        app.include_router(module.router)
    return app
