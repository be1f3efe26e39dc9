"""Executing a plan with prune rows (issue 13): after every install/upgrade succeeded, dependents first; a failed
one blocks the prune. A prune step that succeeded counts as a success of the run, unlike the remediation."""

from __future__ import annotations

from dataclasses import replace

from deploy_manager.models.plan import Action, ActionKind, Reason
from deploy_manager.models.run import RunStatus, StepRecord, StepStatus
from deploy_manager.planner.freeze import plan_orphans
from deploy_manager.planner.plan import make_plan
from deploy_manager.reconcile.executor import component_status, execute
from deploy_manager.reconcile.prune import PRUNED, bootstrap_selector
from deploy_manager.run import outcome
from tests.planner.test_freeze import observed, orphan, pruning
from tests.reconcile.test_executor import Recorder


def pruning_plan(*changed: str):  # type: ignore[no-untyped-def]
    desired = pruning()
    base = make_plan(desired, observed(*changed))
    return plan_orphans(base, desired, [orphan("db"), orphan("api")], previous_needs={"api": ("db",), "db": ()})


class Pruner(Recorder):
    """Records like the real step kinds: a prune step carries the `pruned` reason."""

    def __call__(self, action: Action) -> StepRecord:
        step = super().__call__(action)
        return replace(step, reasons=(Reason(PRUNED, "p"),)) if action.action is ActionKind.uninstall else step


def test_prunes_run_last_dependents_first() -> None:
    rec = Pruner()
    steps = execute(pruning_plan("ks", "gl"), rec, max_parallel=4)
    assert rec.started[-2:] == ["api", "db"]
    assert rec.started.index("api") > rec.finished.index("gl")
    assert {s.component: s.status for s in steps}["db"] is StepStatus.succeeded


def test_a_failed_upgrade_blocks_every_prune() -> None:
    steps = execute(pruning_plan("ks", "gl"), Pruner(fail={"ks"}), max_parallel=4)
    status = {s.component: s.status for s in steps}
    assert status["api"] is StepStatus.blocked and status["db"] is StepStatus.blocked
    assert status["x"] is StepStatus.skipped


def test_a_prune_is_a_success_and_the_remediation_uninstall_a_failure() -> None:
    pruned = StepRecord("db", "db", "os", ActionKind.uninstall.value, StepStatus.succeeded, (Reason(PRUNED, "p"),))
    remediated = replace(pruned, reasons=(Reason("uninstalled", "u"),))
    assert component_status(pruned) is StepStatus.succeeded
    assert component_status(remediated) is StepStatus.failed
    assert outcome([pruned])[0] is RunStatus.succeeded


def test_bootstrap_selector_needs_all_our_labels() -> None:
    assert bootstrap_selector("dev", "nova") == (
        "app.kubernetes.io/managed-by=deploy-manager,deploy-manager.io/cluster=dev,deploy-manager.io/component=nova"
    )
