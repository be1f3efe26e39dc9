"""Step kind `uninstall`: `helm uninstall` (the remediation of a failed first install, or `on_failure: uninstall`)."""

from __future__ import annotations

import time

from deploy_manager.clock import now
from deploy_manager.helm.runner import HelmError
from deploy_manager.models.plan import Action, ActionKind, Reason
from deploy_manager.models.run import StepRecord, StepStatus
from deploy_manager.reconcile.step import MSG_UNINSTALLED, RunContext, action_step


def uninstall(action: Action, ctx: RunContext, *, failed_revision: int | None = None, cause: str = "") -> StepRecord:
    """Uninstall the release; `cause` (the failure being remediated) is kept as the step's error."""
    comp = ctx.cluster.components[action.component]
    started, t0 = now(), time.monotonic()
    frm = failed_revision if failed_revision is not None else action.revision
    reasons: tuple[Reason, ...] = ()
    status, error, tail, code = StepStatus.failed, cause, "", None
    try:
        result = ctx.helm.uninstall(release=comp.release, namespace=comp.namespace, timeout=comp.timeout)
        reasons = (Reason("uninstalled", MSG_UNINSTALLED.format(frm=frm)),)
        tail, code = result.output_tail, result.exit_code
    except HelmError as exc:
        error = f"{cause}; uninstall failed: {exc}" if cause else f"uninstall failed: {exc}"
        tail, code = exc.output_tail, exc.exit_code
    return action_step(
        action,
        ActionKind.uninstall,
        status,
        started=started,
        t0=t0,
        reasons=reasons,
        helm_revision=frm,
        exit_code=code,
        output_tail=tail,
        error=error,
    )
