"""Executing plans: DAG order, bounded parallelism, transitive blocking, independent work continues."""

from __future__ import annotations

import threading
import time

import pytest

from deploy_manager.models.plan import Action, ActionKind, Plan, ReleaseState
from deploy_manager.models.run import RunStatus, StepRecord, StepStatus
from deploy_manager.reconcile.cancel import RunCancel, RunStopped
from deploy_manager.reconcile.executor import chain_heights, execute
from deploy_manager.run import outcome, stopped_outcome

NEEDS = {"rmq": (), "mc": (), "ks": ("rmq", "mc"), "gl": ("ks",), "pl": ("ks",), "nova": ("gl", "pl"), "x": ()}
ORDER = ["mc", "rmq", "x", "ks", "gl", "pl", "nova"]


def plan(kinds: dict[str, ActionKind] | None = None) -> Plan:
    kinds = kinds or {}
    return Plan(
        cluster="dev",
        commit="c",
        actions=tuple(
            Action(
                component=n,
                release=n,
                namespace="os",
                action=kinds.get(n, ActionKind.install),
                state=ReleaseState.absent,
                needs=NEEDS[n],
            )
            for n in ORDER
        ),
    )


class Recorder:
    def __init__(self, fail: set[str] = frozenset(), delay: float = 0.02) -> None:  # type: ignore[assignment]
        self.fail, self.delay = fail, delay
        self.started: list[str] = []
        self.finished: list[str] = []
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()

    def __call__(self, action: Action) -> StepRecord:
        with self.lock:
            for need in action.needs:
                assert need in self.finished or need not in self.started, f"{action.component} before {need}"
            self.started.append(action.component)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        time.sleep(self.delay)
        with self.lock:
            self.active -= 1
            self.finished.append(action.component)
        status = StepStatus.failed if action.component in self.fail else StepStatus.succeeded
        return StepRecord(action.component, action.release, action.namespace, action.action.value, status)


def test_dag_order_and_parallelism() -> None:
    rec = Recorder(delay=0.1)
    steps = execute(plan(), rec, max_parallel=4)
    assert {s.component for s in steps} == set(ORDER) and all(s.status is StepStatus.succeeded for s in steps)
    pos = {n: rec.started.index(n) for n in ORDER}
    for name, needs in NEEDS.items():
        for need in needs:
            assert rec.finished.index(need) < pos[name]
    assert rec.max_active == 3  # mc, rmq, x together; then ks; then gl, pl


def test_bounded_pool() -> None:
    rec = Recorder(delay=0.05)
    execute(plan(), rec, max_parallel=1)
    assert rec.max_active == 1


def test_failure_blocks_dependents_transitively_and_others_continue() -> None:
    rec = Recorder(fail={"rmq"})
    seen: list[str] = []
    steps = {s.component: s for s in execute(plan(), rec, on_step=lambda s: seen.append(s.component))}
    assert steps["rmq"].status is StepStatus.failed
    assert {n for n, s in steps.items() if s.status is StepStatus.blocked} == {"ks", "gl", "pl", "nova"}
    assert {n for n, s in steps.items() if s.status is StepStatus.succeeded} == {"mc", "x"}
    assert steps["ks"].reasons[0].message == "needs rmq, which failed"
    assert steps["gl"].reasons[0].message == "needs ks, which is blocked"
    assert steps["gl"].action == "blocked"
    assert sorted(seen) == sorted(ORDER)
    assert set(rec.started) == {"mc", "rmq", "x"}


def test_none_actions_do_not_run_and_unblock_dependents() -> None:
    rec = Recorder()
    kinds = {n: ActionKind.none for n in ORDER} | {"gl": ActionKind.upgrade}
    steps = {s.component: s for s in execute(plan(kinds), rec)}
    assert rec.started == ["gl"]
    assert steps["ks"].status is StepStatus.skipped and steps["gl"].status is StepStatus.succeeded


def test_planned_blocked_stays_blocked() -> None:
    rec = Recorder()
    steps = {s.component: s for s in execute(plan({"ks": ActionKind.blocked}), rec)}
    assert steps["ks"].status is StepStatus.blocked and steps["nova"].status is StepStatus.blocked
    assert "ks" not in rec.started and "x" in rec.started


def test_critical_path_first_when_slots_are_scarce() -> None:
    # a, b, c ready together; only c heads a chain (c -> d -> e): with one slot c must start first.
    needs = {"a": (), "b": (), "c": (), "d": ("c",), "e": ("d",)}
    plan_ = Plan(
        cluster="dev",
        commit="c",
        actions=tuple(
            Action(component=n, release=n, namespace="os", action=ActionKind.install, needs=d) for n, d in needs.items()
        ),
    )
    rec = Recorder(delay=0.01)
    execute(plan_, rec, max_parallel=1)
    assert rec.started[0] == "c"
    assert chain_heights(plan_.actions) == {"a": 1, "b": 1, "c": 3, "d": 2, "e": 1}


def test_worker_threads_carry_the_callers_log_context() -> None:
    import logging

    from deploy_manager.logging_setup import ContextFilter, log_context

    seen: dict[str, tuple[object, object, str]] = {}
    context = ContextFilter("dev")

    def run_action(action: Action) -> StepRecord:
        with log_context(component=action.component, release=action.release):
            record = logging.LogRecord("t", logging.INFO, __file__, 1, "step", (), None)
            context.filter(record)
            seen[action.component] = (record.run_id, record.component, threading.current_thread().name)
        return StepRecord(action.component, action.release, action.namespace, action.action.value, StepStatus.succeeded)

    with log_context(run_id=42):
        execute(plan(), run_action, max_parallel=3)
    assert set(seen) == set(ORDER)
    assert all(run_id == 42 and comp == name for name, (run_id, comp, _) in seen.items())
    assert all(thread.startswith("dm-exec") for _, _, thread in seen.values())  # really in the worker threads


def test_a_stopped_run_starts_no_further_component_and_the_running_ones_finish() -> None:
    cancel = RunCancel()
    rec = Recorder(delay=0.05)

    def stop_during_ks(action: Action) -> StepRecord:
        if action.component == "ks":
            cancel.stop(RunStatus.interrupted, "the service is shutting down")
        return rec(action)

    steps = execute(plan(), stop_during_ks, max_parallel=4, cancel=cancel)
    assert {s.component for s in steps} == {"mc", "rmq", "x", "ks"}  # ks ran to its end
    assert all(s.status is StepStatus.succeeded for s in steps)
    status, error = stopped_outcome(plan(), steps, cancel, *outcome(steps))
    assert status is RunStatus.interrupted
    assert error == "the service is shutting down; not started: gl, nova, pl"


def test_a_stopped_run_that_finished_everything_succeeded() -> None:
    cancel = RunCancel()
    steps = execute(plan(), Recorder(delay=0), cancel=cancel)
    cancel.stop(RunStatus.superseded, "superseded by commit abc")
    assert stopped_outcome(plan(), steps, cancel, *outcome(steps)) == (RunStatus.succeeded, "")


def test_run_cancel_ends_helm_of_the_named_components_only() -> None:
    cancel = RunCancel()
    cancel.helm_started("ks", "d1")
    cancel.helm_started("gl", "d2")
    assert cancel.in_helm() == {"ks": "d1", "gl": "d2"}
    cancel.end_helm({"ks"})
    assert cancel.helm_ended("ks") and not cancel.helm_ended("gl")
    cancel.end_helm()
    assert cancel.helm_ended("gl")
    cancel.helm_finished("ks")
    assert cancel.in_helm() == {"gl": "d2"}
    cancel.check("helm upgrade")  # not stopped: nothing raised
    cancel.stop(RunStatus.superseded, "superseded by commit abc")
    cancel.stop(RunStatus.interrupted, "later reasons do not overwrite the first")
    assert cancel.status is RunStatus.superseded
    with pytest.raises(RunStopped, match="helm upgrade not started: superseded by commit abc"):
        cancel.check("helm upgrade")


def test_a_failed_gate_check_blocks_the_dependents_down_the_chain_naming_it() -> None:
    """Issue 14: a gate check is a node `smoke:<check>`; its step names its component (not the node)."""
    from deploy_manager.models.smoke import AfterRun, SmokeCheck
    from deploy_manager.planner.smoke import gate_plan

    gated = gate_plan(plan(), [SmokeCheck("token-issue", "s", "ks", gates=("ks",))], AfterRun.changed)

    def run_action(action: Action) -> StepRecord:
        if action.component == "smoke:token-issue":
            return StepRecord("ks", "", "os", "smoke:token-issue", StepStatus.failed, error="check token-issue failed")
        return StepRecord(action.component, action.release, "os", action.action.value, StepStatus.succeeded)

    steps = {(s.component, s.action): s for s in execute(gated, run_action)}
    assert steps[("ks", "install")].status is StepStatus.succeeded
    assert steps[("ks", "smoke:token-issue")].status is StepStatus.failed
    for name in ("gl", "pl", "nova"):
        blocked = steps[(name, "blocked")]
        assert [r.message for r in blocked.reasons if r.code == "check_failed"] == [
            "waits for check token-issue, which failed"
        ], blocked.reasons
    assert {r.code for r in steps[("nova", "blocked")].reasons} >= {"need_failed", "check_failed"}
    assert steps[("x", "install")].status is StepStatus.succeeded  # independent work carries on
    status, error = outcome(list(steps.values()))
    assert status is RunStatus.failed and error == "failed: ks; blocked: gl, nova, pl; checks failed: token-issue"
