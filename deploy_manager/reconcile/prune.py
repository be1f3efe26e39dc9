"""Step kind `uninstall` as planned (issue 13, `prune: true`): remove an orphaned component.

The planner chose it: the release carries our labels for this cluster and its component is gone from
cluster.yaml; every install/upgrade of the run has succeeded and the orphans that needed it are gone
(the executor saw to that through the action's `needs`). The step:

1. deletes the component's bootstrap Jobs (with their pods) and their script ConfigMaps and `etc` Secret,
   selected by our labels (managed-by, cluster, component): never anything without them (helm's release
   Secrets carry our cluster/component labels too, but not the managed-by label). First, because once the
   release is gone no later run would know the component to clean up after;
2. `helm uninstall` (waits for the release's objects to be deleted; `--ignore-not-found`, so a retry after
   a crash in between is harmless).

Unlike the remediation `reconcile/uninstall.py`, a successful prune is a success of the component: its
step carries the reason code `pruned` (`executor.component_status`).
"""

from __future__ import annotations

import time

from deploy_manager.bootstrap.manifests import LABEL_CLUSTER, LABEL_COMPONENT, MANAGED_BY, etc_secret_name
from deploy_manager.clock import now
from deploy_manager.helm.runner import HelmError
from deploy_manager.kube.jobs import JobsApi
from deploy_manager.models.errors import DeployManagerError
from deploy_manager.models.plan import Action, ActionKind, Reason
from deploy_manager.models.run import StepRecord, StepStatus
from deploy_manager.reconcile.step import RunContext, action_step

PRUNED = "pruned"  # the reason code that marks an uninstall as a prune (a success), not a remediation
MSG_PRUNED = "pruned: uninstalled release {release} (revision {revision}){jobs}"
PRUNE_TIMEOUT = 300  # seconds: the component's own timeout left cluster.yaml with it


def bootstrap_selector(cluster: str, component: str) -> str:
    managed = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items())
    return f"{managed},{LABEL_CLUSTER}={cluster},{LABEL_COMPONENT}={component}"


def remove_bootstrap(api: JobsApi, namespace: str, cluster: str, component: str, release: str) -> list[str]:
    """Delete the component's bootstrap Jobs, script ConfigMaps and etc Secret; returns the Jobs deleted."""
    selector = bootstrap_selector(cluster, component)
    jobs = sorted(str((j.get("metadata") or {}).get("name")) for j in api.list_jobs(namespace, selector))
    deleted = [name for name in jobs if api.delete_job(namespace, name)]
    for cm in api.list_configmaps(namespace, selector):
        api.delete_configmap(namespace, str((cm.get("metadata") or {}).get("name")))
    etc = api.get_secret(namespace, etc_secret_name(release))
    labels = ((etc or {}).get("metadata") or {}).get("labels") or {}
    if labels.get(LABEL_CLUSTER) == cluster and labels.get(LABEL_COMPONENT) == component:
        api.delete_secret(namespace, etc_secret_name(release))
    return deleted


def prune(action: Action, ctx: RunContext) -> StepRecord:
    started, t0 = now(), time.monotonic()
    status, error, tail, code = StepStatus.failed, "", "", None
    reasons: tuple[Reason, ...] = action.reasons
    jobs: list[str] = []
    try:
        # The Jobs first: once the release is gone no later run would find the component to clean up after.
        if ctx.kube is not None:
            jobs = remove_bootstrap(
                JobsApi(ctx.kube), action.namespace, ctx.cluster.name, action.component, action.release
            )
        result = ctx.helm.uninstall(release=action.release, namespace=action.namespace, timeout=PRUNE_TIMEOUT)
        tail, code = result.output_tail, result.exit_code
        listed = f"; deleted bootstrap Jobs: {', '.join(jobs)}" if jobs else ""
        message = MSG_PRUNED.format(
            release=f"{action.namespace}/{action.release}", revision=action.revision, jobs=listed
        )
        reasons = (Reason(PRUNED, message), *action.reasons)
        status = StepStatus.succeeded
    except HelmError as exc:
        error, tail, code = f"uninstall failed: {exc}", exc.output_tail, exc.exit_code
    except DeployManagerError as exc:  # the release stays: the next run prunes it again
        error = f"removing the bootstrap Jobs failed: {exc}"
    return action_step(
        action,
        ActionKind.uninstall,
        status,
        started=started,
        t0=t0,
        reasons=reasons,
        helm_revision=action.revision,
        exit_code=code,
        output_tail=tail,
        error=error,
    )
