"""The manager's own chart as a component of its cluster (issue 15), on the sandbox with the real helm.

The cluster: `db`, then the manager's own release (`charts/deploy-manager`, needs db), then `web` (needs the
manager). A service run that changes all three upgrades db with helm's wait, then the manager's release last
and without `--wait` (its new pod never becomes ready here: helm would wait out its timeout and fail), and
ends `handed_over` with the Lease released and web not started. A second service (the new pod: the same store,
or a fresh one as with an emptyDir) verifies its release at start-up and finishes the run; a pod of the old
revision (the new one never came) records why the run failed instead.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy_manager.api.app import create_app
from deploy_manager.config import Settings
from deploy_manager.models.plan import Action, ActionKind, Plan, Reason, ReleaseState
from deploy_manager.models.run import RunStatus, StepRecord, StepStatus
from deploy_manager.planner.selfmanage import HANDED_OVER, SelfRelease
from deploy_manager.reconcile.cancel import RunCancel
from deploy_manager.reconcile.selfmanage import execute_with_handover
from deploy_manager.store.sqlite import RunStore
from deploy_manager.wiring import build_pipeline
from kubesim.testing import KubeCLI
from tests.corelib import commit, init_repo, write_chart, write_cluster, write_values
from tests.servicelib import READ_TOKEN, WRITE_TOKEN, LiveServer, wait_for

ROOT = Path(__file__).resolve().parents[2]
_n = itertools.count()


class Cluster:
    """The values repo (a local "remote") and the names of one test's cluster."""

    def __init__(self, tmp_path: Path) -> None:
        suffix = f"{next(_n)}-{int(time.time() * 1000) % 100000}"
        self.apps, self.system = f"apps-{suffix}", f"dm-{suffix}"
        # The chart's ClusterRoleBinding is named after the release: one name per test on the shared sandbox.
        self.release = f"deploy-manager-{suffix}"
        self.root = init_repo(tmp_path / "remote")
        shutil.copytree(ROOT / "charts" / "deploy-manager", self.root / "charts" / "deploy-manager")
        for name in ("db", "web"):
            write_chart(self.root, f"charts/apps/{name}")
        components = {
            "db": {"chart": "charts/apps/db"},
            "deploy-manager": {
                "chart": "charts/deploy-manager",
                "namespace": self.system,
                "release": self.release,
                "needs": ["db"],
                "timeout": 20,
            },
            "web": {"chart": "charts/apps/web", "needs": ["deploy-manager"]},
        }
        write_cluster(self.root, "selfhost", {"namespace": self.apps, "components": components})
        self.values(0, log_level="INFO", never_ready=False)
        self.first = commit(self.root, "initial")

    def values(self, n: int, *, log_level: str, never_ready: bool) -> None:
        manager: dict[str, Any] = {
            "config": {
                "repoUrl": "https://git.example.com/cloud/deploy.git",
                "cluster": "selfhost",
                "logLevel": log_level,
            },
            "persistence": {"enabled": False},
        }
        if never_ready:  # the sandbox never makes the new pod ready: a `helm --wait` on it could only time out
            manager["podAnnotations"] = {"kubesim.io/never-ready": "true"}
        write_values(self.root, "selfhost", "deploy-manager", manager)
        for name in ("db", "web"):
            write_values(self.root, "selfhost", name, {"conf": {name: {"workers": n}}})


# -- the order of a run that writes the own release (no helm: recorded step kinds) ------------------------------

NEEDS = {"db": (), "cache": (), "dm": ("db",), "web": ("dm", "cache"), "ui": ("web",), "batch": ("db",)}
OWN = SelfRelease(namespace="dm-system", name="dm")


def order_plan() -> Plan:
    return Plan(
        "dev",
        "c" * 40,
        tuple(
            Action(
                n,
                n,
                "dm-system" if n == "dm" else "apps",
                ActionKind.upgrade,
                state=ReleaseState.out_of_sync,
                needs=needs,
            )
            for n, needs in NEEDS.items()
        ),
    )


class Steps:
    """Records when each component's step kind ran; `fail` names components whose write fails."""

    def __init__(self, fail: frozenset[str] = frozenset()) -> None:
        self.fail = fail
        self.log: list[str] = []

    def step(self, action: Action, *reasons: Reason) -> StepRecord:
        self.log.append(action.component)
        status = StepStatus.failed if action.component in self.fail else StepStatus.succeeded
        return StepRecord(
            action.component,
            action.release,
            action.namespace,
            action.action.value,
            status,
            reasons=reasons if status is StepStatus.succeeded else (),
        )

    def own(self, action: Action) -> StepRecord:
        return self.step(action, Reason(HANDED_OVER, "handed over"))


def test_the_own_release_is_written_last_and_nothing_starts_after_it() -> None:
    steps = Steps()
    result = execute_with_handover(order_plan(), OWN, run_action=steps.step, write_own=steps.own, max_parallel=3)
    assert result.handed_over and result.deferred == ("web", "ui")
    assert steps.log[-1] == "dm" and sorted(steps.log[:-1]) == ["batch", "cache", "db"]
    assert [s.component for s in result.steps][-1] == "dm"


@pytest.mark.parametrize(
    ("fail", "blocked"),
    [
        # Its need failed: the own release is not written; its dependents are blocked as usual.
        ({"db"}, {"dm", "web", "ui", "batch"}),
        # Its own write failed (nothing to hand over): dependents blocked.
        ({"dm"}, {"web", "ui"}),
    ],
)
def test_no_handover_when_the_own_release_is_not_written(fail: set[str], blocked: set[str]) -> None:
    steps = Steps(frozenset(fail))
    result = execute_with_handover(order_plan(), OWN, run_action=steps.step, write_own=steps.own)
    assert not result.handed_over and result.deferred == ()
    assert {s.component for s in result.steps if s.status is StepStatus.blocked} == blocked
    assert {s.component for s in result.steps} == set(NEEDS)  # every component has its step


def test_an_unrelated_failure_does_not_keep_the_manager_from_upgrading_itself() -> None:
    # A newer manager may be what fixes it; the run's status still says `cache` failed (the new pod keeps it).
    steps = Steps(frozenset({"cache"}))
    result = execute_with_handover(order_plan(), OWN, run_action=steps.step, write_own=steps.own)
    assert result.handed_over and steps.log[-1] == "dm"


def test_a_stopped_run_does_not_write_the_own_release() -> None:
    cancel, steps = RunCancel(), Steps()

    def stop_after(action: Action) -> StepRecord:
        cancel.stop(RunStatus.interrupted, "the service is shutting down")
        return steps.step(action)

    result = execute_with_handover(
        order_plan(), OWN, run_action=stop_after, write_own=steps.own, cancel=cancel, max_parallel=1
    )
    assert not result.handed_over and "dm" not in steps.log


# -- on the sandbox: the manager's chart as a component, real helm, the service over HTTP ------------------------


def helm_shim(tmp_path: Path, helm_bin: Path) -> tuple[Path, Path]:
    """The real helm behind a script that logs each command line (to see which writes wait)."""
    log, shim = tmp_path / "helm-calls.log", tmp_path / "helm"
    shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\nexec "{helm_bin}" "$@"\n')
    shim.chmod(0o755)
    return shim, log


@pytest.fixture
def services(tmp_path: Path, sandbox_module: Any, helm_bin: Path) -> Iterator[Any]:
    shim, log = helm_shim(tmp_path, helm_bin)
    with contextlib.ExitStack() as stack:

        def start(cluster: Cluster, *, state: str, revision: int, identity: str, **extra: Any) -> Any:
            settings = Settings(
                repo_url=f"file://{cluster.root}",
                cluster="selfhost",
                state_dir=tmp_path / state,
                kubeconfig=Path(sandbox_module.kubeconfig),
                helm_bin=str(shim),
                poll_interval_seconds=0,
                observe_interval_seconds=0,
                read_tokens=READ_TOKEN,
                write_tokens=WRITE_TOKEN,
                lease_namespace="default",
                lease_name=f"dm-{cluster.system}",
                lease_duration_seconds=5,
                lease_renew_seconds=1,
                identity=identity,
                trigger_quiet_seconds=0,
                shutdown_grace_seconds=30,
                self_release=cluster.release,
                self_namespace=cluster.system,
                self_revision=revision,
                **extra,
            )
            app = create_app(settings)
            server = LiveServer(app)
            stack.enter_context(server)
            return server, app.state.dm.queue

        yield start, log


def install_first(cluster: Cluster, tmp_path: Path, sandbox: Any, helm_bin: Path) -> None:
    """The manager's first install and its cluster, as a person (or Jenkins) does it: not from its own pod."""
    store = RunStore(tmp_path / "installer" / "deploy-manager.db")
    pipeline = build_pipeline(
        helm_bin=str(helm_bin),
        kubeconfig=Path(sandbox.kubeconfig),
        kube_context=None,
        store=store,
        state_dir=tmp_path / "installer",
    )
    from deploy_manager.source.git import GitSource

    record = pipeline.apply(GitSource(str(cluster.root)), "selfhost", cluster.first, trigger="cli")
    assert record.status.value == "succeeded", record


def get_run(server: LiveServer, run_id: int) -> dict[str, Any]:
    with server.client(READ_TOKEN) as c:
        return dict(c.get(f"/runs/{run_id}").json())


def releases(cli: KubeCLI, cluster: Cluster) -> dict[str, tuple[str, int]]:
    out = json.loads(cli.helm("list", "-A", "--deployed", "--failed", "--pending", "-o", "json").stdout)
    mine = (cluster.apps, cluster.system)
    return {
        "deploy-manager" if r["name"] == cluster.release else r["name"]: (r["status"], int(r["revision"]))
        for r in out
        if r["namespace"] in mine
    }


def hand_over(
    cluster: Cluster, services: Any, tmp_path: Path, sandbox: Any, helm_bin: Path, kubectl_bin: Path
) -> tuple[int, str, KubeCLI]:
    """Install, then let a service (the pod of revision 1) run a change of all three: returns the run id."""
    start, log = services
    install_first(cluster, tmp_path, sandbox, helm_bin)
    cli = KubeCLI(helm_bin, kubectl_bin, sandbox.kubeconfig, tmp_path / "home")
    assert releases(cli, cluster) == {"db": ("deployed", 1), "deploy-manager": ("deployed", 1), "web": ("deployed", 1)}
    old, queue = start(cluster, state="state-old", revision=1, identity=f"old_{cluster.system}")
    assert queue.wait_idle(60)
    cluster.values(1, log_level="DEBUG", never_ready=True)
    sha = commit(cluster.root, "all three change; the manager logs at DEBUG")
    with old.client(WRITE_TOKEN) as c:
        answer = c.post("/runs", json={"revision": sha})
    assert answer.status_code == 202, answer.text
    run_id = int(answer.json()["run_id"])
    run = wait_for(lambda: (r := get_run(old, run_id))["status"] not in ("queued", "running") and r, timeout=120)
    assert run["status"] == "handed_over", run
    steps = {s["component"]: s for s in run["steps"]}
    assert set(steps) == {"db", "deploy-manager"}  # web waits for the new pod
    own = steps["deploy-manager"]
    assert own["action"] == "upgrade" and own["status"] == "succeeded" and own["helm_revision"] == 2
    assert [d["code"] for d in own["reason_details"]][-1] == "handed_over"
    assert own["started_at"] >= steps["db"]["finished_at"]  # last: after everything else finished
    assert "left for the new pod: web" in run["error"]
    # No helm --wait on itself (its pod never gets ready), the usual wait for the others.
    calls = [line for line in log.read_text().splitlines() if line.startswith("upgrade --install")]
    own_calls = [c for c in calls if c.startswith(f"upgrade --install {cluster.release} ")]
    assert len(own_calls) == 1 and "--wait" not in own_calls[0], own_calls
    assert any(c.startswith("upgrade --install db ") and "--wait=" in c for c in calls)
    assert f"deploy-manager.io/handover={run_id}" in own_calls[0]
    assert releases(cli, cluster) == {"db": ("deployed", 2), "deploy-manager": ("deployed", 2), "web": ("deployed", 1)}
    # The Lease is free for the new pod, and this pod takes no further run. The record is finished first and
    # the worker hands the Lease back just after, so on a real API server the test may look in between.
    def lease_free() -> bool:
        out = cli.kubectl("get", "lease", f"dm-{cluster.system}", "-n", "default", "-o", "json").stdout
        return not json.loads(out)["spec"].get("holderIdentity")

    wait_for(lease_free, timeout=15, interval=0.2)
    assert queue.handed_over
    with old.client(WRITE_TOKEN) as c:
        refused = c.post("/runs", json={})
    assert refused.status_code == 503 and "handed over" in refused.json()["detail"]
    old.__exit__(None, None, None)  # the Deployment controller stops the old pod (Recreate)
    return run_id, sha, cli


@pytest.mark.helm
@pytest.mark.slow
@pytest.mark.parametrize("store", ["same-store", "fresh-store"])
def test_the_manager_upgrades_itself_and_its_new_pod_finishes_the_run(
    store: str, services: Any, tmp_path: Path, sandbox_module: Any, helm_bin: Path, kubectl_bin: Path
) -> None:
    cluster = Cluster(tmp_path)
    run_id, sha, cli = hand_over(cluster, services, tmp_path, sandbox_module, helm_bin, kubectl_bin)
    start, _ = services
    # Meanwhile a newer commit changes web again (pushed while the pods were being swapped).
    write_values(cluster.root, "selfhost", "web", {"conf": {"web": {"workers": 2}}})
    newer = commit(cluster.root, "web workers=2")
    # The new pod: revision 2 of the release; its store is the old pod's volume, or an emptyDir (fresh).
    new, queue = start(
        cluster,
        state="state-old" if store == "same-store" else "state-new",
        revision=2,
        identity=f"new_{cluster.system}",
    )
    assert queue.wait_idle(120)
    with new.client(READ_TOKEN) as c:
        listed = c.get("/runs").json()
    if store == "same-store":  # the handed-over run is finished at its commit, then the start-up run deploys head
        assert [(r["trigger"], r["commit"], r["status"]) for r in listed[:2]] == [
            ("startup", newer, "succeeded"),
            ("manual", sha, "succeeded"),
        ], listed
        web_revisions = 3
    else:  # the store lost the run: the release's handover label brings it back; it deploys the head
        assert [(r["trigger"], r["commit"]) for r in listed] == [("handover", newer)], listed
        run_id = listed[0]["id"]
        web_revisions = 2
    run = get_run(new, run_id)
    assert run["status"] == "succeeded", run
    verify = next(s for s in run["steps"] if s["action"] == "verify")
    assert verify["status"] == "succeeded" and verify["component"] == "deploy-manager"
    assert verify["reason_details"][0]["code"] == "self_verified"
    assert "deployed at revision 2" in verify["reasons"][0] and sha[:12] in verify["reasons"][0]
    web = next(s for s in run["steps"] if s["component"] == "web")
    assert web["action"] == "upgrade" and web["status"] == "succeeded" and web["started_at"] >= verify["finished_at"]
    assert releases(cli, cluster) == {
        "db": ("deployed", 2),
        "deploy-manager": ("deployed", 2),
        "web": ("deployed", web_revisions),
    }
    with new.client(READ_TOKEN) as c:
        shown = {r["component"]: r for r in c.get("/releases").json()}
    assert shown["web"]["deployed_commit"] == newer and shown["deploy-manager"]["deployed_commit"] == sha
    assert not queue.handed_over and len(get_run(new, run_id)["steps"]) == len(run["steps"])  # finished once


@pytest.mark.helm
@pytest.mark.slow
def test_a_pod_of_the_old_revision_records_why_the_handed_over_run_failed(
    services: Any, tmp_path: Path, sandbox_module: Any, helm_bin: Path, kubectl_bin: Path
) -> None:
    cluster = Cluster(tmp_path)
    run_id, _, _ = hand_over(cluster, services, tmp_path, sandbox_module, helm_bin, kubectl_bin)
    start, _ = services
    # The new revision's pod never came; the pod that starts runs revision 1 (e.g. rescheduled, or a rollback).
    new, queue = start(cluster, state="state-old", revision=1, identity=f"again_{cluster.system}")
    assert queue.wait_idle(120)
    run = get_run(new, run_id)
    assert run["status"] == "failed", run
    verify = next(s for s in run["steps"] if s["action"] == "verify")
    assert verify["status"] == "failed" and verify["reason_details"][0]["code"] == "self_not_verified"
    assert "this pod runs revision 1" in verify["error"]
    web = next(s for s in run["steps"] if s["component"] == "web")
    assert web["status"] == "blocked" and "needs deploy-manager, which failed" in web["reasons"][0]
    # Then it goes on as any pod at start-up: a new run re-plans the branch head (the handed-over run stays failed).
    with new.client(READ_TOKEN) as c:
        listed = c.get("/runs").json()
    assert [r["status"] for r in listed if r["id"] == run_id] == ["failed"]
    assert listed[0]["trigger"] == "startup" and listed[0]["id"] > run_id


@pytest.mark.helm
@pytest.mark.slow
def test_a_pod_that_is_not_replaced_finishes_the_handed_over_run_itself_and_goes_on(
    services: Any, tmp_path: Path, sandbox_module: Any, helm_bin: Path, kubectl_bin: Path
) -> None:
    """The new revision's pod never replaces this one (a paused Deployment): after DM_SELF_HANDOVER_WAIT_SECONDS the
    old pod records why the run failed and takes runs again."""
    cluster = Cluster(tmp_path)
    start, _ = services
    install_first(cluster, tmp_path, sandbox_module, helm_bin)
    old, queue = start(
        cluster, state="state", revision=1, identity=f"old_{cluster.system}", self_handover_wait_seconds=2
    )
    assert queue.wait_idle(60)
    cluster.values(1, log_level="DEBUG", never_ready=True)
    sha = commit(cluster.root, "change")
    with old.client(WRITE_TOKEN) as c:
        run_id = int(c.post("/runs", json={"revision": sha}).json()["run_id"])
    run = wait_for(lambda: (r := get_run(old, run_id))["status"] in ("failed", "succeeded") and r, timeout=120)
    verify = next(s for s in run["steps"] if s["action"] == "verify")
    assert verify["status"] == "failed" and "this pod runs revision 1" in verify["error"]
    assert [s["action"] for s in run["steps"] if s["component"] == "deploy-manager"] == ["upgrade", "verify"]
    assert not queue.handed_over
    with old.client(WRITE_TOKEN) as c:
        assert c.post("/runs", json={}).status_code == 202  # runs are taken again


@pytest.mark.helm
@pytest.mark.slow
@pytest.mark.kubesim_only("slows writes through /_sandbox/ to catch helm mid-write")
def test_an_own_release_left_pending_by_a_killed_pod_is_unlocked_and_handed_over(
    services: Any, tmp_path: Path, sandbox_module: Any, helm_bin: Path, kubectl_bin: Path
) -> None:
    """The pod was killed while helm wrote its own release (no wait: seconds, yet possible): the release is left
    `pending-upgrade`. The next pod's run unlocks it (rollback) and writes it again, neither waiting on itself."""
    cluster = Cluster(tmp_path)
    start, log = services
    install_first(cluster, tmp_path, sandbox_module, helm_bin)
    cluster.values(1, log_level="DEBUG", never_ready=False)
    sha = commit(cluster.root, "change")
    sandbox_module.inject_fault(type="slow", kind="Deployment", namespace=cluster.system, name=cluster.release,
                                seconds=60)  # fmt: skip
    env = {**os.environ, "HELM_CACHE_HOME": str(tmp_path / "helm-cache")}
    proc = subprocess.Popen(
        [str(helm_bin), "upgrade", cluster.release, str(cluster.root / "charts/deploy-manager"), "-n", cluster.system,
         "--reuse-values", "--set", "config.logLevel=WARNING", "--wait", "--timeout", "60s",
         "--kubeconfig", str(sandbox_module.kubeconfig),
         "--labels", f"deploy-manager.io/digest=0123,deploy-manager.io/commit={sha}"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "helm-by-hand.log").open("w"), start_new_session=True, env=env,
    )  # fmt: skip
    cli = KubeCLI(helm_bin, kubectl_bin, sandbox_module.kubeconfig, tmp_path / "home")
    try:
        pending = lambda: releases(cli, cluster)["deploy-manager"][0] == "pending-upgrade"  # noqa: E731
        wait_for(lambda: pending() or proc.poll() is not None, timeout=90, interval=0.3)
        assert pending(), (tmp_path / "helm-by-hand.log").read_text()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    sandbox_module.clear_faults()
    # The next pod (a fresh store: the start-up plan finds the release pending, ours, and this pod holds the Lease).
    new, queue = start(cluster, state="state-next", revision=2, identity=f"next_{cluster.system}")
    run = wait_for(lambda: next((r for r in get_run_list(new) if r["status"] == "handed_over"), None), timeout=120)
    own = [(s["action"], s["status"]) for s in get_run(new, run["id"])["steps"] if s["component"] == "deploy-manager"]
    assert own == [("unlock", "succeeded"), ("upgrade", "succeeded")]
    calls = [c for c in log.read_text().splitlines() if f" {cluster.release} " in f" {c} " and
             c.split()[0] in ("rollback", "upgrade")]  # fmt: skip
    assert [c.split()[0] for c in calls] == ["rollback", "upgrade"] and not [c for c in calls if "--wait" in c]
    assert releases(cli, cluster)["deploy-manager"] == ("deployed", 4)  # 2 pending, 3 the rollback, 4 the upgrade
    assert queue.handed_over


def get_run_list(server: LiveServer) -> list[dict[str, Any]]:
    with server.client(READ_TOKEN) as c:
        return list(c.get("/runs").json())
