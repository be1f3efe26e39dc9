"""Run a plan's actions in dependency order with a bounded thread pool.

A component starts once every need has succeeded (or needed nothing: action `none`). When a component
fails or is blocked, every dependent is recorded `blocked` naming the need, while independent
components carry on. Steps are reported through `on_step` as they finish (the store records them).
When more components are ready than there are slots, those heading the longest chain of dependents
start first (critical-path-first list scheduling), so a slot never delays the DAG's critical path
for a leaf.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from deploy_manager.clock import now
from deploy_manager.models.plan import REMEDIATIONS, Action, ActionKind, Plan, Reason
from deploy_manager.models.run import StepRecord, StepStatus
from deploy_manager.models.smoke import NODE_PREFIX
from deploy_manager.reconcile.cancel import RunCancel
from deploy_manager.reconcile.correct_drift import correct_drift
from deploy_manager.reconcile.prune import PRUNED, prune
from deploy_manager.reconcile.rollback import rollback
from deploy_manager.reconcile.smoke import smoke
from deploy_manager.reconcile.step import MSG_CHECK_FAILED, MSG_NEED_FAILED, RunContext, StepKind
from deploy_manager.reconcile.unlock import unlock
from deploy_manager.reconcile.upgrade import upgrade

# The step kind of each action that writes. `none` and `blocked` are settled here without a step kind.
STEP_KINDS: dict[ActionKind, StepKind] = {
    ActionKind.install: upgrade,
    ActionKind.upgrade: upgrade,
    ActionKind.unlock: unlock,
    ActionKind.rollback: rollback,
    # A planned uninstall is a prune (issue 13); the remediation uninstall is called by the upgrade step kind.
    ActionKind.uninstall: prune,
    ActionKind.smoke: smoke,
    ActionKind.correct_drift: correct_drift,
}


def component_status(step: StepRecord) -> StepStatus:
    """What a component's final step means for its dependents and the run: a remediation (rollback,
    uninstall) undid a failed write, so the component failed even when the remediation itself succeeded."""
    if step.action in REMEDIATIONS and not any(r.code == PRUNED for r in step.reasons):
        return StepStatus.failed
    return step.status


def dispatch(ctx: RunContext) -> Callable[[Action], StepRecord]:
    """One action -> its step kind's StepRecord, within the run's context."""

    def run(action: Action) -> StepRecord:
        return STEP_KINDS[action.action](action, ctx)

    return run


def _passive(action: Action, status: StepStatus, extra: tuple[Reason, ...] = ()) -> StepRecord:
    ts = now()
    return StepRecord(
        component=action.component,
        release=action.release,
        namespace=action.namespace,
        action=ActionKind.blocked.value if status is StepStatus.blocked else action.action.value,
        status=status,
        reasons=extra + action.reasons,
        helm_revision=action.revision,
        started_at=ts,
        finished_at=ts,
    )


def need_reason(need: str, status: StepStatus) -> Reason:
    """Why a dependent is blocked: a need that failed or is blocked (a component, or a gate check, issue 14)."""
    verb = "failed" if status is StepStatus.failed else "is blocked"
    if need.startswith(NODE_PREFIX):
        return Reason("check_failed", MSG_CHECK_FAILED.format(check=need.removeprefix(NODE_PREFIX), verb=verb))
    return Reason("need_failed", MSG_NEED_FAILED.format(need=need, verb=verb))


def chain_heights(actions: tuple[Action, ...]) -> dict[str, int]:
    """Length of the longest chain of dependents below each component (a leaf has 1)."""
    dependents: dict[str, list[str]] = {a.component: [] for a in actions}
    for a in actions:
        for need in a.needs:
            if need in dependents:
                dependents[need].append(a.component)
    heights: dict[str, int] = {}

    def height(name: str) -> int:
        if name not in heights:
            heights[name] = 1 + max((height(d) for d in dependents[name]), default=0)
        return heights[name]

    for name in dependents:
        height(name)
    return heights


def execute(
    plan: Plan,
    run_action: Callable[[Action], StepRecord],
    *,
    max_parallel: int = 4,
    on_step: Callable[[StepRecord], None] | None = None,
    cancel: RunCancel | None = None,
    settled: Mapping[str, StepStatus] | None = None,
) -> list[StepRecord]:
    """Execute `plan`; return one StepRecord per action, in completion order.

    Once `cancel` is stopped no further component starts: the running ones finish, the others get no step.
    `settled`: components outside `plan` already settled (earlier in the run, e.g. before a handover), with the
    status their dependents in `plan` go by."""
    heights = chain_heights(plan.actions)
    order = {a.component: i for i, a in enumerate(plan.actions)}
    # Dicts keep insertion order: iterate the longest chains first, then plan order.
    pending: dict[str, Action] = {
        a.component: a for a in sorted(plan.actions, key=lambda a: (-heights[a.component], order[a.component]))
    }
    slots = max(1, max_parallel)
    outcome: dict[str, StepStatus] = dict(settled or {})
    steps: list[StepRecord] = []

    checks_behind: dict[str, tuple[str, ...]] = {}  # node -> the failed gate checks that blocked it

    def finish(step: StepRecord, name: str) -> None:
        if name.startswith(NODE_PREFIX) and step.status is StepStatus.failed:
            checks_behind[name] = (name.removeprefix(NODE_PREFIX),)
        # Keyed by the plan's node: a check's step names its component, its node is `smoke:<check>`.
        outcome[name] = component_status(step)
        steps.append(step)
        if on_step is not None:
            on_step(step)

    with ThreadPoolExecutor(max_workers=slots, thread_name_prefix="dm-exec") as pool:
        running: dict[Future[StepRecord], str] = {}
        while pending or running:
            progressed = True
            while progressed:  # settle everything decidable without helm: none, blocked, ready to start
                progressed = False
                for name, action in list(pending.items()):
                    bad = [n for n in action.needs if outcome.get(n) in (StepStatus.failed, StepStatus.blocked)]
                    if action.action is ActionKind.blocked:
                        finish(_passive(action, StepStatus.blocked), name)
                    elif bad:
                        extra = tuple(need_reason(n, outcome[n]) for n in bad)
                        # A dependent further down still names the failed check that blocked its chain.
                        behind = [c for n in bad for c in checks_behind.get(n, ())]
                        checks_behind[name] = tuple(dict.fromkeys(behind))
                        extra += tuple(
                            Reason("check_failed", MSG_CHECK_FAILED.format(check=c, verb="failed"))
                            for c in checks_behind[name]
                            if NODE_PREFIX + c not in bad
                        )
                        finish(_passive(action, StepStatus.blocked, extra), name)
                    elif not all(outcome.get(n) in (StepStatus.succeeded, StepStatus.skipped) for n in action.needs):
                        continue
                    elif action.action is ActionKind.none:
                        finish(_passive(action, StepStatus.skipped), name)
                    elif len(running) >= slots or (cancel is not None and cancel.stopped):
                        continue  # ready, but wait for a slot: a longer chain may become ready first
                    else:
                        # The worker thread carries the caller's log context (run id, cluster).
                        running[pool.submit(contextvars.copy_context().run, run_action, action)] = name
                    del pending[name]
                    progressed = True
            if not running:
                if cancel is not None and cancel.stopped:
                    break  # stopped: what did not start gets no step (the run records it as not started)
                if pending:  # only possible with needs outside the plan: a planner bug, not user input
                    raise RuntimeError(f"plan cannot progress: {sorted(pending)} wait for unknown needs")
                break
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in done:
                finish(fut.result(), running.pop(fut))
    return steps
