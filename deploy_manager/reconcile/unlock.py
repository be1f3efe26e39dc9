"""Step kind `unlock`: free a release left pending-* by an operation that is not running, then write it.

The planner chose `unlock` only when the operation is provably dead (we hold the cluster's Lease, and the
pending revision is ours or older than its timeout). The release goes back to its last deployed revision
(`helm rollback`), or is uninstalled when it never deployed; that is recorded as its own `unlock` step
(reason `unlocked`: from which revision to which), and then the component is installed/upgraded as planned.
"""

from __future__ import annotations

import time
from dataclasses import replace

from deploy_manager.clock import now
from deploy_manager.helm.runner import HelmError
from deploy_manager.logging_setup import log_context
from deploy_manager.models.plan import Action, ActionKind, Reason, ReleaseState
from deploy_manager.models.run import StepRecord, StepStatus
from deploy_manager.reconcile.step import MSG_UNLOCKED, RunContext, action_step
from deploy_manager.reconcile.upgrade import upgrade


def unlock(action: Action, ctx: RunContext) -> StepRecord:
    comp = ctx.cluster.components[action.component]
    started, t0 = now(), time.monotonic()
    frm, to = action.revision, action.last_deployed
    revision: int | None = frm
    tail, code, error = "", None, ""
    with log_context(component=comp.name, release=comp.release):
        try:
            if to is not None:
                result = ctx.helm.rollback(
                    release=comp.release, namespace=comp.namespace, revision=to, timeout=comp.timeout
                )
                revision = result.revision
                what = f"rolled back to revision {to} (now revision {revision})"
            else:
                result = ctx.helm.uninstall(release=comp.release, namespace=comp.namespace, timeout=comp.timeout)
                what = "uninstalled (it never deployed)"
            tail, code = result.output_tail, result.exit_code
            status = StepStatus.succeeded
        except HelmError as exc:
            status, error, tail, code = StepStatus.failed, f"unlock failed: {exc}", exc.output_tail, exc.exit_code
            what = "could not be freed"
    step = action_step(
        action,
        ActionKind.unlock,
        status,
        started=started,
        t0=t0,
        reasons=(Reason("unlocked", MSG_UNLOCKED.format(frm=frm, what=what)),),
        helm_revision=revision,
        exit_code=code,
        output_tail=tail,
        error=error,
    )
    if status is not StepStatus.succeeded:
        return step  # the component failed: its dependents are blocked
    ctx.emit(step)
    # Now write it as the commit asks: an upgrade of the rolled-back release, or a fresh install.
    if to is not None:
        follow = replace(action, action=ActionKind.upgrade, state=ReleaseState.drifted, revision=revision)
    else:
        follow = replace(action, action=ActionKind.install, state=ReleaseState.absent, revision=None)
    return upgrade(follow, ctx)
