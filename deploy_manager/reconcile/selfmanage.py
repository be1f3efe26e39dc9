"""Acting on the manager's own release (issue 15): write it last without waiting on itself, and verify it.

`execute_with_handover` runs a plan in which the manager's own release is written (`planner.selfmanage` cut
it): first every component that does not wait on the own release (the executor, as usual); then, once all of
them have finished and the run was not stopped, the own release through its usual step kind (install, upgrade
or unlock) but with a helm that never `--wait`s (nor for a remediation's rollback) and that labels the release
with the run's id (`deploy-manager.io/handover`). Nothing is started after it: under `Recreate` the Deployment
controller now replaces this pod. Its dependents get no step; the new pod starts them. If the own release
could not be written (its need failed, helm failed), there is nothing to hand over and its dependents are
blocked as usual.

`verify_step` is the new pod's first step of the run it finishes: it checks its own release
(`planner.selfmanage.verify_self`) and records the verdict as a `verify` step of the own component.
Nothing here writes to the store: the run owner (`deploy_manager.run`) records what these return.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from deploy_manager.clock import now
from deploy_manager.models.labels import LABEL_PREFIX
from deploy_manager.models.observed import ObservedRelease
from deploy_manager.models.plan import Action, Plan, Reason
from deploy_manager.models.run import StepRecord, StepStatus
from deploy_manager.planner.selfmanage import (
    HANDED_OVER,
    HANDOVER_LABEL,
    MSG_HANDED_OVER,
    VERIFY_ACTION,
    SelfRelease,
    split_for_handover,
    verify_self,
)
from deploy_manager.reconcile.cancel import RunCancel
from deploy_manager.reconcile.executor import STEP_KINDS, component_status, execute
from deploy_manager.reconcile.step import RunContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HandoverResult:
    steps: list[StepRecord]
    handed_over: bool = False
    deferred: tuple[str, ...] = ()  # the own release's dependents, left to the new pod (when handed over)


def write_own_release(action: Action, ctx: RunContext) -> StepRecord:
    """The own release's step kind: as planned (install, upgrade, unlock), never waiting on itself."""
    labels = {LABEL_PREFIX + HANDOVER_LABEL: str(ctx.run_id if ctx.run_id is not None else 0)}
    own_ctx = replace(ctx, helm=ctx.helm.without_wait(labels))
    step = STEP_KINDS[action.action](action, own_ctx)
    if step.status is StepStatus.succeeded:  # (a remediation's step is always failed: nothing handed over)
        return replace(step, reasons=(*step.reasons, Reason(HANDED_OVER, MSG_HANDED_OVER)))
    return step


def execute_with_handover(
    plan: Plan,
    own: SelfRelease | None,
    *,
    run_action: Callable[[Action], StepRecord],
    write_own: Callable[[Action], StepRecord],
    max_parallel: int = 4,
    on_step: Callable[[StepRecord], None] | None = None,
    cancel: RunCancel | None = None,
) -> HandoverResult:
    """Execute `plan` (`run_action`: each action's step kind), writing the own release last (`write_own`, e.g.
    `write_own_release` bound to the run's context) and handing the run over once it is written."""
    split = split_for_handover(plan, own)
    if split.own is None:
        return HandoverResult(execute(plan, run_action, max_parallel=max_parallel, on_step=on_step, cancel=cancel))
    steps = execute(split.first, run_action, max_parallel=max_parallel, on_step=on_step, cancel=cancel)
    outcome = {s.component: component_status(s) for s in steps}
    # Last, alone: nothing else runs while (or after) the Deployment controller replaces this pod.
    own_plan = Plan(plan.cluster, plan.commit, (split.own,))
    log.info(
        "writing the manager's own release %s/%s last, without waiting on itself",
        split.own.namespace,
        split.own.release,
    )
    own_steps = execute(own_plan, write_own, max_parallel=1, on_step=on_step, cancel=cancel, settled=outcome)
    steps += own_steps
    handed_over = any(
        s.status is StepStatus.succeeded and any(r.code == HANDED_OVER for r in s.reasons) for s in own_steps
    )
    deferred = tuple(a.component for a in split.deferred)
    if handed_over or not split.deferred:
        return HandoverResult(steps, handed_over=handed_over, deferred=deferred if handed_over else ())
    # Not handed over (its need failed, helm failed, the run was stopped): the dependents go by the usual rules.
    outcome.update({s.component: component_status(s) for s in own_steps})
    rest = Plan(plan.cluster, plan.commit, split.deferred)
    steps += execute(rest, run_action, max_parallel=max_parallel, on_step=on_step, cancel=cancel, settled=outcome)
    return HandoverResult(steps)


def verify_step(own: SelfRelease, action: Action | None, observed: ObservedRelease | None, commit: str) -> StepRecord:
    """The new pod's verdict on its own release, as a `verify` step of the own component."""
    ok, reason = verify_self(own, observed, commit=commit)
    ts = now()
    return StepRecord(
        component=action.component if action is not None else own.name,
        release=own.name,
        namespace=own.namespace,
        action=VERIFY_ACTION,
        status=StepStatus.succeeded if ok else StepStatus.failed,
        reasons=(reason,),
        helm_revision=observed.revision if observed is not None else None,
        error="" if ok else reason.message,
        started_at=ts,
        finished_at=ts,
    )
