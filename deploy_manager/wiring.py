"""The one place the run path's objects are wired together (the CLI and the service both call it).

HelmRunner and KubeClient on one kubeconfig/context, the bootstrap engine as the hook around each write,
the store, and the chart cache under the state directory. The service passes its metrics to time helm.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploy_manager.bootstrap.engine import BootstrapEngine
from deploy_manager.bootstrap.smoke import SmokeJobs
from deploy_manager.helm.runner import HelmResult, HelmRunner
from deploy_manager.kube.client import KubeClient
from deploy_manager.models.errors import ConfigError
from deploy_manager.models.smoke import AfterRun
from deploy_manager.pipeline import Pipeline
from deploy_manager.store.sqlite import RunStore

if TYPE_CHECKING:
    from deploy_manager.bootstrap.manifests import JobPodPolicy
    from deploy_manager.metrics import ServiceMetrics
    from deploy_manager.planner.selfmanage import SelfRelease


class MeteredHelmRunner(HelmRunner):
    """Times every helm command for the `deploy_manager_helm_command_duration_seconds` histogram."""

    def __init__(self, *args: Any, metrics: ServiceMetrics, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.metrics = metrics

    def run(self, args: list[str], **kwargs: Any) -> HelmResult:
        with self.metrics.helm_duration.labels(args[0] if args else "helm").time():
            return super().run(args, **kwargs)


def build_pipeline(
    *,
    helm_bin: str,
    kubeconfig: Path | None,
    kube_context: str | None,
    store: RunStore,
    state_dir: Path,
    max_parallel: int = 4,
    metrics: ServiceMetrics | None = None,
    namespaces: Sequence[str] | None = None,
    pod_policy: JobPodPolicy | None = None,
    suspend_namespace: str | None = None,
    self_release: SelfRelease | None = None,
    smoke_after_run: AfterRun | str | None = None,
) -> Pipeline:
    """The real pipeline: bootstrap steps run as Jobs around each install/upgrade. `namespaces`: list release
    Secrets per namespace (namespaced RBAC); `pod_policy`: bootstrap Job pods' security context and resources;
    `suspend_namespace`: where the suspend ConfigMap is read (the Lease's namespace); `self_release`: the
    manager's own release, written last without waiting on itself (issue 15)."""
    helm = (
        HelmRunner(helm_bin, kubeconfig=kubeconfig, kube_context=kube_context)
        if metrics is None
        else MeteredHelmRunner(helm_bin, kubeconfig=kubeconfig, kube_context=kube_context, metrics=metrics)
    )
    kube = KubeClient(kubeconfig=kubeconfig, context=kube_context, namespaces=namespaces or None)
    return Pipeline(
        helm=helm,
        kube=kube,
        store=store,
        max_parallel=max_parallel,
        hook=BootstrapEngine(helm=helm, kube=kube, pod_policy=pod_policy),
        cache_dir=state_dir / "charts",
        suspend_namespace=suspend_namespace,
        self_release=self_release,
        smoke=SmokeJobs(kube, pod_policy=pod_policy),
        smoke_after_run=smoke_mode(smoke_after_run),
    )


def smoke_mode(value: AfterRun | str | None = None) -> AfterRun:
    """`DM_SMOKE_AFTER_RUN` (changed | all | none; default changed): the service passes its setting, the CLI
    reads the environment."""
    raw = value if value is not None else os.environ.get("DM_SMOKE_AFTER_RUN") or AfterRun.changed.value
    try:
        return AfterRun(str(raw).strip().lower())
    except ValueError:
        choices = ", ".join(m.value for m in AfterRun)
        raise ConfigError(f"DM_SMOKE_AFTER_RUN must be one of {choices}, not {str(raw)[:40]!r}") from None
