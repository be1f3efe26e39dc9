"""Step kind `rollback`: `helm rollback` to the last deployed revision (the remediation of a failed upgrade).

The step records which revision failed, the revision rolled back to and the new revision helm wrote, so
the run record and `helm history` agree.
"""

from __future__ import annotations

import time

from deploy_manager.clock import now
from deploy_manager.helm.runner import HelmError
from deploy_manager.models.plan import Action, ActionKind, Reason
from deploy_manager.models.run import StepRecord, StepStatus
from deploy_manager.reconcile.step import MSG_ROLLED_BACK, RunContext, action_step


def rollback(action: Action, ctx: RunContext, *, failed_revision: int | None = None, cause: str = "") -> StepRecord:
    """Roll the release back to `action.last_deployed`; `cause` (the failure being remediated) is kept as the
    step's error, so the step says what failed and what was done about it."""
    comp = ctx.cluster.components[action.component]
    started, t0 = now(), time.monotonic()
    to = action.last_deployed
    frm = failed_revision if failed_revision is not None else action.revision

    def record(
        status: StepStatus,
        revision: int | None,
        reasons: tuple[Reason, ...],
        error: str,
        tail: str = "",
        exit_code: int | None = None,
    ) -> StepRecord:
        return action_step(
            action,
            ActionKind.rollback,
            status,
            started=started,
            t0=t0,
            reasons=reasons,
            helm_revision=revision,
            exit_code=exit_code,
            output_tail=tail,
            error=error,
        )

    if to is None:
        return record(StepStatus.failed, frm, (), f"{cause}; no deployed revision to roll back to".lstrip("; "))
    try:
        result = ctx.helm.rollback(release=comp.release, namespace=comp.namespace, revision=to, timeout=comp.timeout)
    except HelmError as exc:
        error = (
            f"{cause}; rollback to revision {to} failed: {exc}" if cause else f"rollback to revision {to} failed: {exc}"
        )
        return record(StepStatus.failed, exc.revision or frm, (), error, exc.output_tail, exc.exit_code)
    reason = Reason("rolled_back", MSG_ROLLED_BACK.format(frm=frm, to=to, new=result.revision))
    return record(StepStatus.failed, result.revision, (reason,), cause, result.output_tail, result.exit_code)
