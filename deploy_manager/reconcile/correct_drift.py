"""Step kind `correct_drift`: re-apply the release's manifest for the live objects that drifted (issue 13).

The plan chose it for a component with `drift.mode: correct` that is otherwise in sync, with the drifted
objects read in the run's snapshot (`RunContext.drift`). Each object of the release's manifest is applied
server-side as helm's own field manager (`helm`), forcing conflicts, with the release annotations and label
helm itself applies (an apply without them would drop them from the object). No helm command runs, so the
release gets no new revision. The step's reasons say what was corrected (`drift_corrected`: object and fields).
"""

from __future__ import annotations

import copy
import time
from typing import Any

from deploy_manager.clock import now
from deploy_manager.kube.objects import ObjectsApi
from deploy_manager.logging_setup import log_context
from deploy_manager.models.errors import DeployManagerError, TemporaryError
from deploy_manager.models.plan import Action, ActionKind, Reason
from deploy_manager.models.run import StepRecord, StepStatus
from deploy_manager.planner.drift import DriftItem
from deploy_manager.reconcile.step import RunContext, action_step

HELM_FIELD_MANAGER = "helm"
MSG_CORRECTED = "re-applied {what}"


def applied_object(item: DriftItem, release: str, namespace: str) -> dict[str, Any]:
    """The manifest object as helm applies it: with its release annotations and managed-by label."""
    obj = copy.deepcopy(item.manifest)
    meta = obj.setdefault("metadata", {})
    meta.setdefault("annotations", {}).update(
        {"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": namespace}
    )
    meta.setdefault("labels", {})["app.kubernetes.io/managed-by"] = "Helm"
    return obj


def correct_drift(action: Action, ctx: RunContext) -> StepRecord:
    started, t0 = now(), time.monotonic()
    items: tuple[DriftItem, ...] = tuple(ctx.drift.get(action.component, ()))
    done: list[Reason] = []
    error, temporary = "", False
    with log_context(component=action.component, release=action.release):
        try:
            if ctx.kube is None:
                raise DeployManagerError("no Kubernetes client in the run to correct drift with")
            api = ObjectsApi(ctx.kube)
            for item in items:
                if ctx.cancel is not None:
                    ctx.cancel.check("correct drift")
                obj = applied_object(item, action.release, action.namespace)
                api.apply(obj, item.namespace or action.namespace, field_manager=HELM_FIELD_MANAGER)
                done.append(Reason("drift_corrected", MSG_CORRECTED.format(what=item.describe()), item.paths))
        except DeployManagerError as exc:
            error, temporary = f"correcting drift failed: {exc}", isinstance(exc, TemporaryError)
    return action_step(
        action,
        ActionKind.correct_drift,
        StepStatus.failed if error else StepStatus.succeeded,
        started=started,
        t0=t0,
        reasons=action.reasons + tuple(done),
        helm_revision=action.revision,
        error=error,
        temporary=temporary,
    )
