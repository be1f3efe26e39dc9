"""Run a plan's actions in dependency order with a bounded thread pool.

A component starts once every need has succeeded (or needed nothing: action `none`). When a component
fails or is blocked, every dependent is recorded `blocked` naming the need, while independent
components carry on. Steps are reported through `on_step` as they finish (the store records them).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from deploy_manager.models.plan import Action, ActionKind, Plan, Reason
from deploy_manager.models.run import StepRecord, StepStatus
from deploy_manager.store.sqlite import now

MSG_NEED_FAILED = "needs {need}, which {verb}"


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


def execute(
    plan: Plan,
    run_action: Callable[[Action], StepRecord],
    *,
    max_parallel: int = 4,
    on_step: Callable[[StepRecord], None] | None = None,
) -> list[StepRecord]:
    """Execute `plan`; return one StepRecord per action, in completion order."""
    pending: dict[str, Action] = {a.component: a for a in plan.actions}
    outcome: dict[str, StepStatus] = {}
    steps: list[StepRecord] = []

    def finish(step: StepRecord) -> None:
        outcome[step.component] = step.status
        steps.append(step)
        if on_step is not None:
            on_step(step)

    with ThreadPoolExecutor(max_workers=max(1, max_parallel), thread_name_prefix="dm-exec") as pool:
        running: dict[Future[StepRecord], str] = {}
        while pending or running:
            progressed = True
            while progressed:  # settle everything decidable without helm: none, blocked, ready to start
                progressed = False
                for name, action in list(pending.items()):
                    bad = [n for n in action.needs if outcome.get(n) in (StepStatus.failed, StepStatus.blocked)]
                    if action.action is ActionKind.blocked:
                        finish(_passive(action, StepStatus.blocked))
                    elif bad:
                        extra = tuple(
                            Reason(
                                "need_failed",
                                MSG_NEED_FAILED.format(
                                    need=n, verb="failed" if outcome[n] is StepStatus.failed else "is blocked"
                                ),
                            )
                            for n in bad
                        )
                        finish(_passive(action, StepStatus.blocked, extra))
                    elif not all(outcome.get(n) in (StepStatus.succeeded, StepStatus.skipped) for n in action.needs):
                        continue
                    elif action.action is ActionKind.none:
                        finish(_passive(action, StepStatus.skipped))
                    else:
                        running[pool.submit(run_action, action)] = name
                    del pending[name]
                    progressed = True
            if not running:
                if pending:  # only possible with needs outside the plan: a planner bug, not user input
                    raise RuntimeError(f"plan cannot progress: {sorted(pending)} wait for unknown needs")
                break
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in done:
                running.pop(fut)
                finish(fut.result())
    return steps
