"""Recovery end to end (issue 10): unlock, remediation and retries, with the sandbox's faults and real helm."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from deploy_manager.cli import app
from deploy_manager.config import lease_name_for
from deploy_manager.lease import ClusterLease, KubernetesLeaseBackend
from deploy_manager.models.run import RunStatus, StepStatus
from tests.corelib import DEPLOYMENT_TEMPLATE, commit, init_repo, simple_cluster, write_chart, write_values
from tests.test_pipeline import Env

pytestmark = pytest.mark.helm

_ns = itertools.count()

# A Deployment that follows the values (a values change is a rollout) and that the sandbox never makes ready
# while `broken` is set (the annotation is on the pod template: a bad image would look the same).
ROLLOUT = DEPLOYMENT_TEMPLATE.replace(
    "      annotations: {values-hash: {{ toJson .Values | sha256sum | quote }}}",
    "      annotations:\n"
    "        values-hash: {{ toJson .Values | sha256sum | quote }}\n"
    '        {{- if .Values.broken }}\n        kubesim.io/never-ready: "true"\n        {{- end }}',
)


@pytest.fixture
def env(tmp_path: Path, sandbox: Any, helm_bin: str) -> Iterator[Env]:
    namespace = f"rec-{next(_ns)}"
    root = init_repo(tmp_path / "repo")
    spec = simple_cluster(root, "dev", namespace=namespace)
    for name in ("glance", "keystone"):
        write_chart(root, f"charts/openstack/{name}", template=ROLLOUT)
    spec["components"]["glance"]["timeout"] = 3
    spec["components"]["keystone"]["timeout"] = 3
    (root / "values/dev/cluster.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    commit(root, "init")
    yield Env(
        root=root, state=tmp_path / "state", cluster="dev", namespace=namespace, sandbox=sandbox, helm_bin=str(helm_bin)
    )


def cluster_spec(env: Env) -> dict[str, Any]:
    return yaml.safe_load((env.root / "values/dev/cluster.yaml").read_text())


def set_spec(env: Env, spec: dict[str, Any], message: str) -> None:
    (env.root / "values/dev/cluster.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    commit(env.root, message)


def history(env: Env, release: str) -> list[tuple[int, str, str]]:
    out = json.loads(env.helm("history", release, "-n", env.namespace, "-o", "json"))
    return [(h["revision"], h["status"], h["description"]) for h in out]


def cli(env: Env, *args: str) -> Any:
    common = ["--kubeconfig", str(env.kubeconfig), "--state-dir", str(env.state), "--helm-bin", env.helm_bin]
    return CliRunner().invoke(app, [*args, "--repo", str(env.root), "--cluster", "dev", *common])


@contextlib.contextmanager
def pending_helm_upgrade(env: Env, release: str, *args: str) -> Iterator[None]:
    """`helm upgrade --wait` of `release` (more `args` for helm) with its api Deployment slowed, started and waited
    for until its release record is pending-upgrade (20 s at most); the body runs while helm waits, then helm is
    SIGKILLed."""
    env.sandbox.inject_fault(type="slow", kind="Deployment", namespace=env.namespace, name=f"{release}-api", seconds=60)
    proc = subprocess.Popen(
        [
            env.helm_bin,
            "upgrade",
            release,
            str(env.root / "charts/openstack" / release),
            "-n",
            env.namespace,
            "--set",
            "replicas=5",
            "--wait",
            "--timeout",
            "60s",
            "--kubeconfig",
            str(env.kubeconfig),
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and history(env, release)[-1][1] != "pending-upgrade":
            time.sleep(0.1)
        yield
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def kill_helm_mid_upgrade(env: Env, release: str) -> None:
    """Start an upgrade of `release` as deploy-manager would (our labels), SIGKILL helm while it waits."""
    with pending_helm_upgrade(env, release, "--labels", "deploy-manager.io/digest=0123,deploy-manager.io/cluster=dev"):
        pass
    env.sandbox.clear_faults()
    assert history(env, release)[-1][1] == "pending-upgrade"


@pytest.mark.kubesim_only("slows writes through /_sandbox/ to catch helm mid-write")
def test_pending_upgrade_left_by_a_killed_helm_is_recovered_by_the_next_apply(env: Env) -> None:
    assert cli(env, "apply").exit_code == 0
    kill_helm_mid_upgrade(env, "glance")
    res = cli(env, "plan", "-o", "json")
    actions = {a["component"]: a for a in json.loads(res.stdout)["actions"]}
    assert actions["glance"]["action"] == "unlock" and "roll back to revision 1" in actions["glance"]["reasons"][-1]
    res = cli(env, "apply", "-o", "json")
    assert res.exit_code == 0, res.stdout + res.stderr
    run = json.loads(res.stdout)
    glance = [s for s in run["steps"] if s["component"] == "glance"]
    assert [(s["action"], s["status"]) for s in glance] == [("unlock", "succeeded"), ("upgrade", "succeeded")]
    assert glance[0]["reason_details"][0]["code"] == "unlocked"
    assert "revision 2 was left pending" in glance[0]["reasons"][0]
    assert "rolled back to revision 1 (now revision 3)" in glance[0]["reasons"][0]
    assert [h[:2] for h in history(env, "glance")] == [
        (1, "superseded"),
        (2, "pending-upgrade"),
        (3, "superseded"),
        (4, "deployed"),
    ]
    assert [glance[0]["helm_revision"], glance[1]["helm_revision"]] == [3, 4]
    assert {a["action"] for a in json.loads(cli(env, "plan", "-o", "json").stdout)["actions"]} == {"none"}


@pytest.mark.kubesim_only("slows writes through /_sandbox/ to catch helm mid-write")
def test_a_persons_pending_release_younger_than_its_timeout_is_left_locked(env: Env) -> None:
    assert cli(env, "apply").exit_code == 0
    spec = cluster_spec(env)
    spec["components"]["glance"]["timeout"] = 600
    set_spec(env, spec, "long glance timeout")
    with pending_helm_upgrade(env, "glance"):  # a person's helm: no labels of ours
        actions = {a["component"]: a for a in json.loads(cli(env, "plan", "-o", "json").stdout)["actions"]}
        assert actions["glance"]["action"] == "blocked"
        assert "a helm command may still be writing it" in actions["glance"]["reasons"][-1]
        assert actions["nova"]["action"] == "blocked"


def test_apply_takes_the_cluster_lease_and_exits_2_naming_its_holder(env: Env) -> None:
    backend = KubernetesLeaseBackend(name=lease_name_for("dev"), namespace="default", kubeconfig=env.kubeconfig)
    other = ClusterLease(backend, identity="service-pod-7")
    assert other.try_acquire()
    try:
        env.sandbox.reset_stats()
        res = cli(env, "apply", "--lease-wait", "1")
        assert res.exit_code == 2
        assert "held by service-pod-7" in res.stderr and "--lease-wait" in res.stderr
        assert env.helm_ls() == {}
        assert cli(env, "plan").exit_code == 0  # plan takes no Lease
    finally:
        other.release()
    res = cli(env, "apply", "--lease-wait", "5")
    assert res.exit_code == 0, res.stderr
    record = backend.get()
    assert record is not None and record.holder is None  # handed back when the apply ended


def test_never_ready_upgrade_is_rolled_back_and_dependents_blocked(env: Env) -> None:
    assert env.apply().status is RunStatus.succeeded
    write_values(env.root, "dev", "keystone", {"replicas": 1, "broken": True})
    commit(env.root, "keystone broken")
    run = env.apply()
    assert run.status is RunStatus.failed
    ks = [s for s in run.steps if s.component == "keystone"]
    assert [(s.action, s.status) for s in ks] == [("upgrade", StepStatus.failed), ("rollback", StepStatus.failed)]
    assert ks[0].helm_revision == 2 and "upgrade" in ks[1].error and ks[1].error.startswith("upgrade failed:")
    assert ks[1].reasons[0].code == "rolled_back"
    assert ks[1].reasons[0].message == "rolled back from revision 2 to revision 1 (now revision 3)"
    assert ks[1].helm_revision == 3
    # helm history agrees with the run record.
    assert [h[:2] for h in history(env, "keystone")] == [(1, "superseded"), (2, "failed"), (3, "deployed")]
    assert history(env, "keystone")[2][2] == "Rollback to 1"
    steps = {s.component: s for s in run.steps}
    assert {steps[n].status for n in ("glance", "placement", "nova")} == {StepStatus.blocked}
    assert "needs keystone, which failed" in steps["glance"].reasons[0].message
    assert "keystone" in run.error
    # Not silently in sync: the next plan writes keystone again.
    assert env.actions()["keystone"] == "upgrade"


def test_remediation_retries_then_on_failure_none(env: Env) -> None:
    assert env.apply().status is RunStatus.succeeded
    spec = cluster_spec(env)
    spec["remediation"] = {"retries": 1, "on_failure": "rollback"}
    spec["components"]["keystone"]["remediation"] = {"on_failure": "none"}  # the retries come from the cluster
    set_spec(env, spec, "remediation")
    write_values(env.root, "dev", "keystone", {"replicas": 1, "broken": True})
    commit(env.root, "keystone broken")
    run = env.apply()
    ks = [s for s in run.steps if s.component == "keystone"]
    assert [(s.action, s.status) for s in ks] == [("upgrade", StepStatus.failed)]
    assert [r.code for r in ks[0].reasons if r.code == "retried"] == ["retried"]
    assert "(revision 2)" in next(r.message for r in ks[0].reasons if r.code == "retried")
    assert ks[0].helm_revision == 3
    # Two attempts, no remediation: helm history shows both failed revisions, nothing rolled back.
    assert [h[1] for h in history(env, "keystone")] == ["deployed", "failed", "failed"]
    assert run.status is RunStatus.failed and env.actions()["keystone"] == "upgrade"


def test_failed_first_install_is_uninstalled(env: Env) -> None:
    write_values(env.root, "dev", "keystone", {"replicas": 1, "broken": True})
    commit(env.root, "keystone broken from the start")
    run = env.apply()
    assert run.status is RunStatus.failed
    ks = [s for s in run.steps if s.component == "keystone"]
    assert [(s.action, s.status) for s in ks] == [("install", StepStatus.failed), ("uninstall", StepStatus.failed)]
    assert ks[1].reasons[0].code == "uninstalled" and ks[1].error.startswith("install failed:")
    assert "keystone" not in env.helm_ls()
    assert {"rabbitmq", "memcached"} <= set(env.helm_ls())
    assert env.actions()["keystone"] == "install"


@pytest.mark.kubesim_only("injects write failures through /_sandbox/")
def test_one_injected_500_on_a_write_is_retried_and_the_run_succeeds(env: Env) -> None:
    assert env.apply().status is RunStatus.succeeded
    write_values(env.root, "dev", "glance", {"replicas": 3})
    commit(env.root, "glance replicas")
    env.sandbox.inject_fault(type="fail-writes", resource="deployments", namespace=env.namespace, count=1, code=500)
    run = env.apply()
    assert run.status is RunStatus.succeeded, run.to_dict()
    glance = [s for s in run.steps if s.component == "glance"]
    assert len(glance) == 1 and glance[0].status is StepStatus.succeeded
    retried = [r for r in glance[0].reasons if r.code == "retried"]
    assert len(retried) == 1 and "injected 500" in retried[0].message
    # helm history shows the failed attempt and the retry that succeeded.
    assert [h[1] for h in history(env, "glance")] == ["superseded", "failed", "deployed"]
    assert glance[0].helm_revision == 3


@pytest.mark.kubesim_only("injects write failures through /_sandbox/")
def test_repeated_500s_fail_the_component_after_the_retries(env: Env) -> None:
    assert env.apply().status is RunStatus.succeeded
    write_values(env.root, "dev", "glance", {"replicas": 3})
    commit(env.root, "glance replicas")
    env.sandbox.inject_fault(type="fail-writes", resource="deployments", namespace=env.namespace, count=50, code=503)
    run = env.apply()
    env.sandbox.clear_faults()
    assert run.status is RunStatus.failed
    glance = [s for s in run.steps if s.component == "glance"]
    assert glance[0].action == "upgrade" and glance[0].status is StepStatus.failed
    assert len([r for r in glance[0].reasons if r.code == "retried"]) == 2  # 3 attempts in all
    steps = {s.component: s for s in run.steps}
    assert steps["nova"].status is StepStatus.blocked
