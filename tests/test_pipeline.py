"""The core loop end to end: real git repos, the real helm binary, the kubesim sandbox.

Each test works in its own namespace(s), so one sandbox serves the module.
"""

from __future__ import annotations

import itertools
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy_manager.helm.runner import HelmRunner
from deploy_manager.kube.client import KubeClient
from deploy_manager.models.errors import ChartError, ConfigError
from deploy_manager.models.run import RunStatus, StepStatus
from deploy_manager.pipeline import Pipeline
from deploy_manager.source.git import GitSource
from deploy_manager.store.sqlite import RunStore
from tests.corelib import commit, init_repo, simple_cluster, write, write_chart, write_cluster, write_values

pytestmark = pytest.mark.helm

_ns_counter = itertools.count()

# A Deployment the cluster never makes ready: helm --wait times out and records the release as failed.
# kubesim reads the annotation on the Deployment; on the real backend kwok reads it on the pod.
NEVER_READY = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  annotations:
    kubesim.io/never-ready: "true"
spec:
  replicas: 1
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
      annotations: {kubesim.io/never-ready: "true"}
    spec:
      containers: [{name: main, image: example/keystone:1}]
"""

UNKNOWN_KIND = """\
apiVersion: bogus.example.com/v1
kind: NoSuchKind
metadata:
  name: {{ .Release.Name }}
"""


@dataclass
class Env:
    root: Path
    state: Path
    cluster: str
    namespace: str
    sandbox: Any
    helm_bin: str

    @property
    def kubeconfig(self) -> Path:
        return Path(self.sandbox.kubeconfig)

    def pipeline(self, max_parallel: int = 4) -> Pipeline:
        return Pipeline(
            helm=HelmRunner(self.helm_bin, kubeconfig=self.kubeconfig),
            kube=KubeClient(kubeconfig=self.kubeconfig),
            store=RunStore.in_dir(self.state),
            max_parallel=max_parallel,
            cache_dir=self.state / "charts",
        )

    def source(self) -> GitSource:
        return GitSource(str(self.root))

    def plan(self) -> dict[str, Any]:
        return self.pipeline().plan(self.source(), self.cluster, "HEAD").to_dict()

    def apply(self):  # noqa: ANN201
        return self.pipeline().apply(self.source(), self.cluster, "HEAD", trigger="test")

    def helm(self, *args: str) -> str:
        return subprocess.run(
            [self.helm_bin, *args, "--kubeconfig", str(self.kubeconfig)], check=True, capture_output=True, text=True
        ).stdout

    def helm_ls(self) -> dict[str, dict[str, Any]]:
        out = json.loads(self.helm("ls", "--deployed", "--failed", "--pending", "-n", self.namespace, "-o", "json"))
        return {r["name"]: r for r in out}

    def actions(self) -> dict[str, str]:
        return {a["component"]: a["action"] for a in self.plan()["actions"]}


def writes(sandbox: Any) -> int:
    stats = sandbox.stats()
    return int(stats["writes"])


@pytest.fixture
def env(tmp_path: Path, sandbox: Any, helm_bin: str) -> Iterator[Env]:
    n = next(_ns_counter)
    namespace = f"os-{n}"
    root = init_repo(tmp_path / "repo")
    simple_cluster(root, "dev", namespace=namespace)
    commit(root, "init")
    yield Env(
        root=root, state=tmp_path / "state", cluster="dev", namespace=namespace, sandbox=sandbox, helm_bin=str(helm_bin)
    )


def test_fresh_install_in_dag_order_with_labels(env: Env) -> None:
    plan = env.plan()
    assert [a["action"] for a in plan["actions"]] == ["install"] * 6
    assert plan["waves"] == [["memcached", "rabbitmq"], ["keystone"], ["glance", "placement"], ["nova"]]
    run = env.apply()
    assert run.status is RunStatus.succeeded, run.to_dict()
    steps = {s.component: s for s in run.steps}
    assert {s.status for s in steps.values()} == {StepStatus.succeeded}
    needs = {
        "keystone": ["rabbitmq", "memcached"],
        "glance": ["keystone"],
        "placement": ["keystone"],
        "nova": ["glance", "placement"],
    }
    for name, deps in needs.items():
        for dep in deps:
            assert steps[dep].finished_at <= steps[name].started_at, (dep, name)
    listed = env.helm_ls()
    assert set(listed) == set(steps) and {r["status"] for r in listed.values()} == {"deployed"}
    # Our labels round-trip into Helm's release Secrets.
    secrets = KubeClient(kubeconfig=env.kubeconfig).list_release_secrets([env.namespace])
    labels = next(s["metadata"]["labels"] for s in secrets if s["metadata"]["labels"]["name"] == "keystone")
    assert labels["deploy-manager.io/commit"] == run.commit
    assert labels["deploy-manager.io/digest"] == env.plan()["actions"][2]["digest"]
    assert all(s.helm_revision == 1 for s in steps.values())


def test_noop_commit_plans_none_and_writes_nothing(env: Env) -> None:
    first = env.apply()
    write(env.root / "README.md", "docs only\n")
    sha = commit(env.root, "readme")
    assert set(env.actions().values()) == {"none"}
    env.sandbox.reset_stats()
    run = env.apply()
    assert run.status is RunStatus.succeeded and {s.status for s in run.steps} == {StepStatus.skipped}
    assert writes(env.sandbox) == 0
    # The stored releases are in sync at the new commit; helm last wrote them at the first one.
    releases = RunStore.in_dir(env.state).list_releases(env.cluster)
    assert len(releases) == 6 and {r.commit for r in releases} == {sha}
    assert {r.deployed_commit for r in releases} == {first.commit}


def test_values_change_is_exactly_one_upgrade_naming_the_key(env: Env) -> None:
    env.apply()
    write_values(
        env.root,
        "dev",
        "keystone",
        {"replicas": 1, "conf": {"keystone": {"debug": False, "token": {"expiration": 7200}}}},
    )
    commit(env.root, "token expiration")
    plan = env.plan()
    changed = [a for a in plan["actions"] if a["action"] != "none"]
    assert [(a["component"], a["action"]) for a in changed] == [("keystone", "upgrade")]
    assert changed[0]["reasons"] == ["values changed: conf.keystone.token"]
    assert any("conf.keystone.token" in r for r in changed[0]["reasons"])  # how tools read it (issue 4)
    assert changed[0]["reason_details"] == [
        {"code": "values_changed", "message": "values changed: conf.keystone.token", "paths": ["conf.keystone.token"]}
    ]
    run = env.apply()
    upgraded = [s for s in run.steps if s.status is StepStatus.succeeded]
    assert [(s.component, s.helm_revision) for s in upgraded] == [("keystone", 2)]
    assert set(env.actions().values()) == {"none"}


def test_common_layer_change(env: Env) -> None:
    env.apply()
    write_values(env.root, "_common", "glance", {"conf": {"glance": {"workers": 8}}})
    commit(env.root, "common glance")
    actions = env.plan()["actions"]
    assert {a["component"]: a["action"] for a in actions if a["action"] != "none"} == {"glance": "upgrade"}
    glance = next(a for a in actions if a["component"] == "glance")
    assert glance["reason_details"][0]["paths"] == ["conf.glance.workers"]


def test_chart_version_bump(env: Env) -> None:
    env.apply()
    write_chart(env.root, "charts/openstack/placement", version="0.2.0")
    commit(env.root, "placement 0.2.0")
    action = next(a for a in env.plan()["actions"] if a["action"] != "none")
    assert action["component"] == "placement"
    assert action["reasons"] == ["chart version changed: 0.1.0 -> 0.2.0"]
    assert action["reason_details"][0] == {
        "code": "chart_version_changed",
        "message": "chart version changed: 0.1.0 -> 0.2.0",
    }
    run = env.apply()
    assert run.status is RunStatus.succeeded
    assert env.helm_ls()["placement"]["chart"] == "placement-0.2.0"


def test_failing_component_blocks_dependents_only(env: Env) -> None:
    write_chart(env.root, "charts/openstack/keystone", template=NEVER_READY)
    spec = yaml.safe_load((env.root / "values/dev/cluster.yaml").read_text())
    spec["components"]["keystone"]["timeout"] = 2
    spec["components"]["keystone"]["remediation"] = {"on_failure": "none"}  # keep the failed release (issue 10)
    write_cluster(env.root, "dev", spec)
    commit(env.root, "keystone never ready")
    run = env.apply()
    assert run.status is RunStatus.failed
    status = {s.component: s.status for s in run.steps}
    assert status == {
        "rabbitmq": StepStatus.succeeded,
        "memcached": StepStatus.succeeded,
        "keystone": StepStatus.failed,
        "glance": StepStatus.blocked,
        "placement": StepStatus.blocked,
        "nova": StepStatus.blocked,
    }
    ks = next(s for s in run.steps if s.component == "keystone")
    assert ks.exit_code == 1 and ks.error and ks.output_tail and ks.helm_revision == 1
    listed = env.helm_ls()
    assert set(listed) == {"rabbitmq", "memcached", "keystone"}
    assert listed["keystone"]["status"] == "failed" and int(listed["keystone"]["revision"]) == ks.helm_revision
    stored = RunStore.in_dir(env.state).get_run(run.id)
    assert stored is not None and stored.status is RunStatus.failed and "keystone" in stored.error
    # Next plan: keystone retried with the reason, dependents installed after it.
    actions = {a["component"]: a for a in env.plan()["actions"]}
    assert actions["keystone"]["action"] == "upgrade"
    assert actions["keystone"]["reason_details"][0]["code"] == "last_failed"
    assert actions["nova"]["action"] == "install"


def test_rejected_manifest_fails_before_any_release_record(env: Env) -> None:
    write_chart(env.root, "charts/openstack/memcached", template=UNKNOWN_KIND)
    commit(env.root, "memcached with an unknown kind")
    run = env.apply()
    steps = {s.component: s for s in run.steps}
    assert run.status is RunStatus.failed and steps["memcached"].status is StepStatus.failed
    assert steps["memcached"].helm_revision is None and "unable to build kubernetes objects" in steps["memcached"].error
    assert steps["rabbitmq"].status is StepStatus.succeeded and steps["keystone"].status is StepStatus.blocked
    assert set(env.helm_ls()) == {"rabbitmq"}


def test_chart_that_fails_to_render_writes_nothing(env: Env) -> None:
    write_chart(env.root, "charts/openstack/nova", template='{{ fail "nope" }}\n')
    commit(env.root, "bad nova")
    env.sandbox.reset_stats()
    with pytest.raises(ChartError, match=r"charts/openstack/nova \(component nova\): chart does not render"):
        env.apply()
    assert writes(env.sandbox) == 0
    assert env.helm_ls() == {}


def test_single_write_that_fails_to_render_writes_nothing(env: Env) -> None:
    env.apply()
    write_chart(env.root, "charts/openstack/nova", template='{{ fail "nope" }}\n')
    commit(env.root, "bad nova")
    env.sandbox.reset_stats()
    run = env.apply()  # one write planned: helm's own render fails before it writes anything
    step = next(s for s in run.steps if s.component == "nova")
    assert run.status is RunStatus.failed and step.status is StepStatus.failed and "nope" in step.error
    assert writes(env.sandbox) == 0
    assert env.helm_ls()["nova"]["revision"] == "1"


def test_database_loss_does_not_change_the_plan(env: Env) -> None:
    env.apply()
    for f in env.state.glob("deploy-manager.db*"):
        f.unlink()
    assert set(env.actions().values()) == {"none"}
    env.sandbox.reset_stats()
    run = env.apply()  # nothing to do, but the fresh database learns the releases from the cluster
    assert run.status is RunStatus.succeeded and writes(env.sandbox) == 0
    stored = RunStore.in_dir(env.state).list_releases(env.cluster)
    assert {(r.component, r.revision, r.status, r.state) for r in stored} == {
        (n, 1, "deployed", "in-sync") for n in ("rabbitmq", "memcached", "keystone", "glance", "placement", "nova")
    }
    assert {r.commit for r in stored} == {run.commit}


def test_manual_helm_upgrade_is_detected(env: Env) -> None:
    env.apply()
    env.helm(
        "upgrade",
        "glance",
        str(next((env.state / "charts").glob("*/glance"))),
        "-n",
        env.namespace,
        "--reuse-values",
        "--set",
        "replicas=3",
    )
    action = next(a for a in env.plan()["actions"] if a["component"] == "glance")
    assert action["action"] == "upgrade"
    assert [r["code"] for r in action["reason_details"]] == ["changed_outside", "values_changed"]
    assert action["reason_details"][1]["paths"] == ["replicas"]
    env.apply()
    assert set(env.actions().values()) == {"none"}


def test_helm_rollback_is_detected(env: Env) -> None:
    env.apply()
    write_values(env.root, "dev", "memcached", {"replicas": 2})
    commit(env.root, "memcached replicas")
    env.apply()
    env.helm("rollback", "memcached", "1", "-n", env.namespace)
    action = next(a for a in env.plan()["actions"] if a["component"] == "memcached")
    assert action["action"] == "upgrade"
    assert action["reason_details"][0]["code"] == "rolled_back"
    assert "Rollback to 1" in action["reasons"][0]
    env.apply()
    assert set(env.actions().values()) == {"none"}


def test_cli_plan_apply_status_history(env: Env) -> None:
    from typer.testing import CliRunner

    from deploy_manager.cli import app

    common = ["--kubeconfig", str(env.kubeconfig), "--state-dir", str(env.state), "--helm-bin", env.helm_bin]
    cli = CliRunner()
    res = cli.invoke(app, ["plan", "--repo", str(env.root), "--cluster", "dev", "-o", "json", *common])
    assert res.exit_code == 0, res.stderr
    plan = json.loads(res.stdout)
    assert set(plan) >= {"cluster", "commit", "actions"} and len(plan["actions"]) == 6
    # Public JSON: reasons are strings; the codes ride along in reason_details.
    assert all(isinstance(r, str) for a in plan["actions"] for r in a["reasons"])
    assert {d["code"] for a in plan["actions"] for d in a["reason_details"]} == {"absent"}
    res = cli.invoke(app, ["apply", "--repo", str(env.root), "--cluster", "dev", *common])
    assert res.exit_code == 0, res.stderr
    assert "run 1: succeeded" in res.stdout
    res = cli.invoke(app, ["status", "--cluster", "dev", "-o", "json", *common])
    rows = json.loads(res.stdout)
    mine = [r for r in rows if r["namespace"] == env.namespace]
    assert len(mine) == 6 and {r["status"] for r in mine} == {"deployed"}
    assert {r["commit"] for r in mine} == {plan["commit"]}
    assert all(r["deployed_commit"] == r["commit"] and r["deployed_at"] == r["updated"] for r in mine)
    res = cli.invoke(app, ["history", "--cluster", "dev", "-o", "yaml", *common])
    runs = yaml.safe_load(res.stdout)
    assert runs[0]["status"] == "succeeded" and len(runs[0]["steps"]) == 6
    res = cli.invoke(app, ["history", "--cluster", "dev", "-o", "json", *common])
    steps = json.loads(res.stdout)[0]["steps"]
    assert [s["reasons"] for s in steps] == [[d["message"] for d in s["reason_details"]] for s in steps]
    assert all(s["reasons"] and isinstance(s["reasons"][0], str) for s in steps)


def test_multiple_namespaces_one_list_call(env: Env) -> None:
    spec = yaml.safe_load((env.root / "values/dev/cluster.yaml").read_text())
    spec["components"]["nova"]["namespace"] = env.namespace + "-compute"
    write_cluster(env.root, "dev", spec)
    commit(env.root, "nova elsewhere")
    run = env.apply()
    assert run.status is RunStatus.succeeded
    assert set(env.actions().values()) == {"none"}
    assert env.helm("ls", "-n", env.namespace + "-compute", "-q").split() == ["nova"]


def test_hooks_run_around_each_write_and_a_failing_hook_blocks_dependents(env: Env) -> None:
    from deploy_manager.reconcile.hooks import HookContext, HookPhase

    calls: list[tuple[str, str, bool]] = []

    def hook(phase: HookPhase, ctx: HookContext) -> None:
        deployed = ctx.component.release in env.helm_ls()
        calls.append((phase.value, ctx.component.name, deployed))
        if ctx.component.name == "glance" and phase is HookPhase.before:
            raise RuntimeError("db-sync failed")

    pipe = env.pipeline()
    pipe.hook = hook
    run = pipe.apply(env.source(), env.cluster, "HEAD", trigger="test")
    steps = {s.component: s for s in run.steps}
    assert steps["glance"].status is StepStatus.failed and steps["glance"].error == "RuntimeError: db-sync failed"
    assert steps["nova"].status is StepStatus.blocked and steps["placement"].status is StepStatus.succeeded
    assert ("before", "keystone", False) in calls and ("after", "keystone", True) in calls
    assert calls.index(("before", "keystone", False)) < calls.index(("after", "keystone", True))
    assert not any(c[1] == "glance" and c[0] == "after" for c in calls)
    assert "glance" not in env.helm_ls()


def test_bootstrap_label_follows_the_steps(env: Env) -> None:
    spec = yaml.safe_load((env.root / "values/dev/cluster.yaml").read_text())
    spec["components"]["keystone"]["bootstrap"] = [{"name": "db-sync"}]
    write_cluster(env.root, "dev", spec)
    write(env.root / "bootstrap/keystone/db-sync.sh.j2", "keystone-manage db_sync\n")
    commit(env.root, "keystone db-sync")
    env.apply()

    def ks_labels() -> dict[str, str]:
        secrets = KubeClient(kubeconfig=env.kubeconfig).list_release_secrets([env.namespace])
        newest = max(
            (s for s in secrets if s["metadata"]["labels"]["name"] == "keystone"),
            key=lambda s: int(s["metadata"]["labels"]["version"]),
        )
        return dict(newest["metadata"]["labels"])

    assert "deploy-manager.io/bootstrap" in ks_labels()
    del spec["components"]["keystone"]["bootstrap"]
    write_cluster(env.root, "dev", spec)
    commit(env.root, "no more db-sync")
    action = next(a for a in env.plan()["actions"] if a["component"] == "keystone")
    assert [r["code"] for r in action["reason_details"]] == ["bootstrap_changed"]
    env.apply()
    assert "deploy-manager.io/bootstrap" not in ks_labels()
    assert set(env.actions().values()) == {"none"}


@pytest.mark.parametrize("case", ["yaml", "schema", "chart", "cycle"])
def test_bad_input_makes_no_cluster_write(env: Env, case: str) -> None:
    from tests.commands.test_core_cmds import break_repo

    env.apply()
    break_repo(env.root, case)
    env.sandbox.reset_stats()
    with pytest.raises(ConfigError):
        env.apply()
    assert writes(env.sandbox) == 0
    runs = RunStore.in_dir(env.state).list_runs(cluster=env.cluster)
    assert runs[0].status is RunStatus.failed and runs[0].error and runs[0].steps == ()


@pytest.mark.kubesim_only("injects write failures through /_sandbox/")
def test_release_left_pending_is_unlocked_by_the_next_apply(env: Env) -> None:
    spec = yaml.safe_load((env.root / "values/dev/cluster.yaml").read_text())
    spec["remediation"] = {"on_failure": "none"}  # leave the pending release for the next run to find
    write_cluster(env.root, "dev", spec)
    commit(env.root, "no remediation")
    env.apply()
    write_values(env.root, "dev", "glance", {"replicas": 2})
    commit(env.root, "glance replicas")
    # helm records the upgrade as pending, then cannot record its outcome: the release stays pending-upgrade.
    env.sandbox.inject_fault(type="fail-writes", resource="secrets", verbs=["update"], count=100, code=500)
    run = env.apply()
    env.sandbox.clear_faults()
    glance = next(s for s in run.steps if s.component == "glance")
    assert run.status is RunStatus.failed and glance.status is StepStatus.failed
    assert glance.helm_revision == 2  # read back from the release record, as `helm ls` shows it
    assert env.helm_ls()["glance"]["status"] == "pending-upgrade"
    # The run that wrote it is dead and we would hold the Lease: the plan unlocks it (issue 10).
    actions = {a["component"]: a for a in env.plan()["actions"]}
    assert actions["glance"]["action"] == "unlock"
    assert [r["code"] for r in actions["glance"]["reason_details"]] == ["locked", "unlock"]
    assert actions["nova"]["action"] == "none"  # not blocked by a need being unlocked
    assert actions["keystone"]["action"] == "none"
    run = env.apply()
    assert run.status is RunStatus.succeeded, run.to_dict()
    steps = [(s.component, s.action, s.status.value) for s in run.steps if s.component == "glance"]
    assert steps == [("glance", "unlock", "succeeded"), ("glance", "upgrade", "succeeded")]
    unlocked = next(s for s in run.steps if s.action == "unlock")
    assert unlocked.reasons[0].code == "unlocked" and "revision 2" in unlocked.reasons[0].message
    assert "rolled back to revision 1 (now revision 3)" in unlocked.reasons[0].message and unlocked.helm_revision == 3
    history = json.loads(env.helm("history", "glance", "-n", env.namespace, "-o", "json"))
    assert [(h["revision"], h["status"]) for h in history] == [
        (1, "superseded"), (2, "pending-upgrade"), (3, "superseded"), (4, "deployed")
    ]
    assert next(s for s in run.steps if s.component == "glance" and s.action == "upgrade").helm_revision == 4
    assert set(env.actions().values()) == {"none"}
