"""Step kind helper: a component's bootstrap steps of one phase, around its helm write.

The plan already says what each step needs (`Action.bootstrap`, from `planner.bootstrap.step_state`);
this hands the phase, the planned steps and the snapshot's Jobs of the component to the hook (the
bootstrap engine, which only creates, waits for, logs and prunes Jobs). A hook failure raises: the
calling step kind records the component failed.
"""

from __future__ import annotations

from deploy_manager.bootstrap import manifests as m
from deploy_manager.models.plan import Action
from deploy_manager.reconcile.hooks import HookContext, HookPhase
from deploy_manager.reconcile.step import RunContext


def run_phase(phase: HookPhase, action: Action, ctx: RunContext) -> None:
    if ctx.hook is None:
        return
    comp = ctx.cluster.components[action.component]
    if ctx.cancel is not None and any(step.when == phase.value for step in comp.bootstrap):
        ctx.cancel.check(f"bootstrap ({phase.value})")  # a stopped run starts no new bootstrap phase
    jobs = tuple(
        j for j in ctx.jobs if ((j.get("metadata") or {}).get("labels") or {}).get(m.LABEL_COMPONENT) == comp.name
    )
    hook_ctx = HookContext(
        cluster=ctx.cluster,
        component=comp,
        action=action,
        run_id=ctx.run_id,
        chart=ctx.charts[comp.name],
        jobs=jobs,
        emit=ctx.emit,
    )
    if ctx.cancel is None or not any(step.when == phase.value for step in comp.bootstrap):
        ctx.hook(phase, hook_ctx)
        return
    with ctx.cancel.activity(comp.name, f"bootstrap ({phase.value})"):  # the status page's live progress
        ctx.hook(phase, hook_ctx)
