"""Workflow checks in a run (issue 14), end to end: real helm, the sandbox's Jobs and its `job-fail`/`slow`
faults. The sandbox runs no script: a check's Job completes (or fails, or is slow) as the fault says."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from deploy_manager.metrics import ServiceMetrics
from deploy_manager.models.run import RunRecord, RunStatus, StepStatus
from deploy_manager.models.smoke import SmokeStatus
from deploy_manager.store.sqlite import RunStore
from tests.smokelib import CHECKS, SmokeEnv, build, steps_of

pytestmark = [pytest.mark.helm, pytest.mark.kubesim_only("injects job-fail/slow faults through /_sandbox/")]


@pytest.fixture
def env(tmp_path: Path, sandbox: Any, helm_bin: str) -> SmokeEnv:
    return build(tmp_path, sandbox, helm_bin)


def history(env: SmokeEnv, release: str) -> list[tuple[int, str]]:
    out = json.loads(env_helm(env, "history", release, "-n", env.namespace, "-o", "json"))
    return [(h["revision"], h["status"]) for h in out]


def env_helm(env: SmokeEnv, *args: str) -> str:
    return subprocess.run(
        [env.helm_bin, *args, "--kubeconfig", str(env.kubeconfig)], check=True, capture_output=True, text=True
    ).stdout


def metric(store: RunStore, cluster: str, name: str, check: str) -> float:
    metrics = ServiceMetrics()
    metrics.watch_smoke(cluster, lambda: store.latest_smoke(cluster))
    text = generate_latest(metrics.registry).decode()
    line = next(x for x in text.splitlines() if x.startswith(f'{name}{{check="{check}",cluster="{cluster}"}}'))
    return float(line.rsplit(" ", 1)[1])


def change_with_a_failing_check(env: SmokeEnv, component: str, check: str) -> RunRecord:
    """Deploy, change `component`, and apply again with the Jobs of `check` failing."""
    assert env.apply().status is RunStatus.succeeded
    env.change(component)
    env.sandbox.inject_fault(type="job-fail", namespace=env.namespace, name=f"smoke-{check}-*")
    return env.apply()


def component_steps(run: RunRecord, component: str) -> list[tuple[str, StepStatus]]:
    return [(s.action, s.status) for s in run.steps if s.component == component]


def test_all_checks_pass_gates_run_before_dependents_and_the_run_succeeds(env: SmokeEnv, kubectl_bin: Path) -> None:
    run = env.apply()
    assert run.status is RunStatus.succeeded, run.error
    steps = steps_of(run)
    order = [(s.component, s.action) for s in run.steps]
    for check in CHECKS:
        step = steps[(check["component"], f"smoke:{check['name']}")]
        assert step.status is StepStatus.succeeded and step.reasons[0].code == "smoke_passed"
        assert "kubesim: container" in step.output_tail  # the Job's pod log
    # A gate runs after its component is written and before the components that need it start.
    gate = order.index(("keystone", "smoke:token-issue"))
    assert order.index(("keystone", "install")) < gate < order.index(("glance", "install"))
    assert gate < order.index(("placement", "install"))
    # The ungated check runs at the end.
    assert order[-1] == ("nova", "smoke:server-boot")
    store = RunStore.in_dir(env.state)
    latest = {r.name: r for r in store.latest_smoke("dev")}
    assert {n: r.status for n, r in latest.items()} == {c["name"]: SmokeStatus.passed for c in CHECKS}
    assert {r.run_id for r in latest.values()} == {run.id}
    assert latest["token-issue"].job.startswith("smoke-token-issue-")
    assert metric(store, "dev", "deploy_manager_smoke_check_success", "server-boot") == 1.0
    # Jobs in the component's namespace, named smoke-<check>-<suffix>, restricted like bootstrap Jobs.
    args = [str(kubectl_bin), "--kubeconfig", str(env.kubeconfig), "get", "jobs", "-n", env.namespace, "-o", "json"]
    jobs = json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)["items"]
    names = sorted(j["metadata"]["name"].rsplit("-", 1)[0] for j in jobs)
    assert names == ["smoke-image-list", "smoke-server-boot", "smoke-token-issue"]
    pod = jobs[0]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    # A run that writes nothing runs no check (DM_SMOKE_AFTER_RUN=changed).
    again = env.apply()
    assert again.status is RunStatus.succeeded and not [s for s in again.steps if s.action.startswith("smoke:")]


def test_a_failing_gate_check_rolls_keystone_back_and_blocks_its_dependents_naming_it(env: SmokeEnv) -> None:
    run = change_with_a_failing_check(env, "keystone", "token-issue")
    assert run.status is RunStatus.failed
    ks = component_steps(run, "keystone")
    assert ks == [
        ("upgrade", StepStatus.succeeded),
        ("rollback", StepStatus.failed),
        ("smoke:token-issue", StepStatus.failed),
    ]
    steps = steps_of(run)
    rollback = steps[("keystone", "rollback")]
    assert rollback.reasons[0].code == "rolled_back"
    assert rollback.reasons[0].message == "rolled back from revision 2 to revision 1 (now revision 3)"
    assert rollback.error.startswith("check token-issue failed")
    assert [h[1] for h in history(env, "keystone")] == ["superseded", "superseded", "deployed"]
    check = steps[("keystone", "smoke:token-issue")]
    assert check.reasons[0].code == "smoke_failed" and "BackoffLimitExceeded" in check.error
    for name in ("glance", "placement", "nova"):
        step = steps[(name, "blocked")]
        assert step.status is StepStatus.blocked
        assert any("check token-issue" in r.message and r.code == "check_failed" for r in step.reasons), step.reasons
    assert "keystone" in run.error and "token-issue" in run.error
    latest = {r.name: r for r in RunStore.in_dir(env.state).latest_smoke("dev")}
    assert latest["token-issue"].status is SmokeStatus.failed and latest["token-issue"].run_id == run.id
    # Not in sync: the next run writes keystone again (and checks it again).
    env.sandbox.clear_faults()
    fixed = env.apply()
    assert fixed.status is RunStatus.succeeded, fixed.error
    assert steps_of(fixed)[("keystone", "smoke:token-issue")].status is StepStatus.succeeded


def test_a_failing_ungated_check_degrades_the_run_and_its_metric_is_0(env: SmokeEnv) -> None:
    env.sandbox.inject_fault(type="job-fail", namespace=env.namespace, name="smoke-server-boot-*")
    run = env.apply()
    assert run.status is RunStatus.degraded
    assert run.error == "1 of 3 checks failed: server-boot"
    # Every component was written and stays (no on_failure: rollback on the check).
    assert all(s.status is StepStatus.succeeded for s in run.steps if not s.action.startswith("smoke:server"))
    assert [h[1] for h in history(env, "nova")] == ["deployed"]
    store = RunStore.in_dir(env.state)
    assert metric(store, "dev", "deploy_manager_smoke_check_success", "server-boot") == 0.0
    assert metric(store, "dev", "deploy_manager_smoke_check_success", "token-issue") == 1.0


def test_an_ungated_check_with_on_failure_rollback_rolls_back_what_the_run_wrote(env: SmokeEnv) -> None:
    checks = [dict(c) for c in CHECKS]
    checks[2]["on_failure"] = "rollback"
    env.set_checks(checks)
    run = change_with_a_failing_check(env, "nova", "server-boot")
    assert run.status is RunStatus.degraded
    nova = component_steps(run, "nova")
    assert nova == [
        ("upgrade", StepStatus.succeeded),
        ("rollback", StepStatus.failed),
        ("smoke:server-boot", StepStatus.failed),
    ]
    assert [h[1] for h in history(env, "nova")] == ["superseded", "superseded", "deployed"]


def test_a_slow_pass_over_its_sla_is_slow_and_counted_failed(env: SmokeEnv) -> None:
    checks = [dict(c) for c in CHECKS]
    checks[2]["sla"] = 0.5
    env.set_checks(checks)
    env.sandbox.inject_fault(type="slow", kind="Job", namespace=env.namespace, name="smoke-server-boot-*", seconds=1.5)
    run = env.apply()
    assert run.status is RunStatus.degraded
    step = steps_of(run)[("nova", "smoke:server-boot")]
    assert step.status is StepStatus.failed and step.reasons[0].code == "smoke_slow"
    assert step.duration >= 1.5 and "SLA of 0.5s" in step.reasons[0].message
    store = RunStore.in_dir(env.state)
    latest = {r.name: r for r in store.latest_smoke("dev")}
    assert latest["server-boot"].status is SmokeStatus.slow and latest["server-boot"].sla == 0.5
    assert metric(store, "dev", "deploy_manager_smoke_check_success", "server-boot") == 0.0
    assert metric(store, "dev", "deploy_manager_smoke_check_duration_seconds", "server-boot") >= 1.5
    assert run.error == "1 of 3 checks failed: server-boot (slow)"


def test_smoke_after_run_all_and_none(env: SmokeEnv) -> None:
    assert env.apply(after_run="none").status is RunStatus.succeeded
    assert not RunStore.in_dir(env.state).latest_smoke("dev")
    env.change("glance")
    run = env.apply(after_run="all")
    ran = sorted(s.action for s in run.steps if s.action.startswith("smoke:"))
    assert ran == ["smoke:image-list", "smoke:server-boot", "smoke:token-issue"]
