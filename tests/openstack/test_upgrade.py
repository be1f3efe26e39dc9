"""The upgrade rehearsal (issue 17): release N deployed, then the bump to N+1, in the order the engine runs it.

Only one OpenStack release is installed here (the tier's venv), so N+1 is a simulated bump of every image tag
of the demo cluster (2026.2 -> 2027.1), as the issue allows. Two halves:

1. The manager itself (`deploy-manager apply`, the bootstrap engine, real helm) deploys the demo cluster's
   release N on the sandbox, then the bump. The order of what it did is read from the sandbox's store events
   (resourceVersion order, what a watch reports): each bootstrap Job's creation, each release record's write
   (the roll starts) and each Deployment reaching its new generation (rolled). Every schema sync and
   upgrade-check comes before its component's write; every online-data-migrations after it, nova's after
   every nova Deployment rolled. The run record lists the same steps.
2. The real scripts, in that order, against the real services the tier deployed: for placement, nova and
   cinder, every step the engine re-ran (db syncs, `*-status upgrade check`, online data migrations, ...),
   with the component's pods restarted where the engine rolled them, and the services Ready afterwards.

Then a downgrade (2027.1 -> 2026.2) and a skip (2027.1 -> 2028.2) are refused by `apply`: exit 2, one line,
no write to the cluster.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from deploy_manager.bootstrap.manifests import LABEL_COMPONENT, LABEL_STEP
from deploy_manager.cli import app
from tests.bootstrap.stack import CLUSTER, StoreEvents, build_repo, declared_steps, read_cluster
from tests.corelib import commit

from . import cloud as c
from .conftest import record

pytestmark = [pytest.mark.openstack, pytest.mark.kubesim_only("reads the order of writes from kubesim's store events")]

RELEASE_N, RELEASE_NEXT = "2026.2", "2027.1"
DOWNGRADE, SKIP = "2026.2", "2028.2"  # from 2027.1: an older release; beyond 2028.1 (the next SLURP)
SCHEMA_STEPS = {"db-sync", "api-db-sync"}
CHECK_STEPS = {"upgrade-check"}
AFTER_ROLL_STEPS = {"online-data-migrations"}
REPLAYED = ("placement", "nova", "cinder")  # the components with an upgrade check and online data migrations
JOBS, SECRETS, DEPLOYMENTS = ("batch", "jobs"), ("", "secrets"), ("apps", "deployments")


@dataclass(frozen=True)
class Event:
    """One thing the engine did, in cluster order: `job` (a bootstrap step), `write` (helm's new release
    record: the roll starts) or `rolled` (a Deployment at its new generation, all replicas updated and available)."""

    rv: int
    component: str
    kind: str
    name: str


class Recorder(StoreEvents):
    """The store's events, read back as what the engine did in cluster order."""

    def timeline(self, since: int, namespace: str, components: set[str]) -> list[Event]:
        out: list[Event] = []
        generation: dict[str, int] = {}
        with self._lock:
            events = list(self.events)
        for rv, kind, gr, obj in events:
            meta = obj.get("metadata") or {}
            if meta.get("namespace") != namespace:
                continue
            if gr == DEPLOYMENTS and rv <= since:
                generation[meta["name"]] = int(meta.get("generation") or 0)
            if rv <= since:
                continue
            labels = meta.get("labels") or {}
            if gr == JOBS and kind == "ADDED" and LABEL_STEP in labels:
                out.append(Event(rv, labels[LABEL_COMPONENT], "job", labels[LABEL_STEP]))
            elif gr == SECRETS and kind == "ADDED" and labels.get("owner") == "helm":
                if labels.get("name") in components:
                    out.append(Event(rv, labels["name"], "write", meta["name"]))
            elif gr == DEPLOYMENTS and kind == "MODIFIED":
                name, status, spec = meta["name"], obj.get("status") or {}, obj.get("spec") or {}
                replicas = int(spec.get("replicas", 1))
                new = int(status.get("observedGeneration") or 0) > generation.get(name, 0)
                done = status.get("updatedReplicas") == replicas and status.get("availableReplicas") == replicas
                owner = (meta.get("labels") or {}).get("app.kubernetes.io/instance", "")
                if new and done and owner in components:
                    generation[name] = int(status["observedGeneration"])
                    out.append(Event(rv, owner, "rolled", name))
        return out


@dataclass
class Rehearsal:
    repo: Path
    state: Path
    sandbox: Any
    helm_bin: Path
    timeline: list[Event]
    run: dict[str, Any]
    plan: dict[str, dict[str, Any]]

    def cli(self, *args: str) -> Any:
        base = [
            "--cluster", CLUSTER, "--kubeconfig", str(self.sandbox.kubeconfig), "--state-dir", str(self.state),
        ]  # fmt: skip
        if args[0] in ("plan", "apply"):
            base += ["--repo", str(self.repo), "--helm-bin", str(self.helm_bin)]
        return CliRunner().invoke(app, [*args, *base], catch_exceptions=False)


def retag(repo: Path, old: str, new: str) -> str:
    """Every image tag of the demo cluster from release `old` to `new`; returns the commit."""
    pattern = re.compile(rf"(image|quay\.io/[\w./-]+):{re.escape(old)}(?=[-_@\s]|$)", re.M)
    changed = 0
    for path in sorted((repo / "values").rglob("*.yaml")):
        text = path.read_text()
        new_text, n = pattern.subn(lambda m: f"{m.group(1)}:{new}", text)
        if n:
            path.write_text(new_text)
            changed += n
    assert changed, f"no image tag names {old}"
    return commit(repo, f"images: {old} -> {new}")


@pytest.fixture(scope="module")
def rehearsal(sandbox_module: Any, helm_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsal]:
    tmp = tmp_path_factory.mktemp("upgrade")
    repo = build_repo(tmp / "repo")
    recorder = Recorder()
    sandbox_module.state.store.subscribe(recorder)
    r = Rehearsal(repo, tmp / "state", sandbox_module, helm_bin, [], {}, {})
    first = r.cli("apply", "-o", "json")
    assert first.exit_code == 0, first.stderr + first.stdout[-3000:]
    since = int(sandbox_module.state.store.resource_version)
    retag(repo, RELEASE_N, RELEASE_NEXT)
    plan = r.cli("plan", "-o", "json")
    assert plan.exit_code == 0, plan.stderr
    r.plan = {a["component"]: a for a in json.loads(plan.stdout)["actions"]}
    bumped = r.cli("apply", "-o", "json")
    assert bumped.exit_code == 0, bumped.stderr + bumped.stdout[-3000:]
    r.run = json.loads(bumped.stdout)
    r.timeline = recorder.timeline(since, read_cluster(repo)["namespace"], set(declared_steps(repo)))
    yield r


def test_the_plan_names_the_release_change(rehearsal: Rehearsal) -> None:
    plan = rehearsal.plan
    for name in c.SERVICES:
        assert plan[name]["action"] == "upgrade", plan[name]
        assert f"OpenStack release {RELEASE_N} -> {RELEASE_NEXT} (N -> N+1)" in plan[name]["reasons"], plan[name]


def test_engine_order_schema_and_checks_before_the_roll_migrations_after(rehearsal: Rehearsal) -> None:
    timeline, declared = rehearsal.timeline, declared_steps(rehearsal.repo)
    assert rehearsal.run["status"] == "succeeded", rehearsal.run.get("error")
    for name in c.SERVICES:
        mine = [e for e in timeline if e.component == name]
        kinds = [(e.kind, e.name) for e in mine]
        writes = [i for i, e in enumerate(mine) if e.kind == "write"]
        assert len(writes) == 1, kinds  # one helm upgrade per component
        write = writes[0]
        rolled = [i for i, e in enumerate(mine) if e.kind == "rolled"]
        assert rolled and min(rolled) > write, kinds
        for i, e in enumerate(mine):
            if e.kind != "job":
                continue
            when = dict(declared[name])[e.name]
            assert (i < write) == (when == "before"), f"{name}: {e.name} ({when}) at {i}, write at {write}: {kinds}"
            if e.name in AFTER_ROLL_STEPS:  # after every Deployment of the component rolled
                assert i > max(rolled), f"{name}: {e.name} before the roll finished: {kinds}"
        ran = {e.name for e in mine if e.kind == "job"}
        # The image changed: every schema sync and status check of the component re-ran.
        assert {s for s, _ in declared[name]} & (SCHEMA_STEPS | CHECK_STEPS | AFTER_ROLL_STEPS) <= ran, kinds
        record("upgrade", f"{name} order", " ".join(f"{e.kind}:{e.name}" for e in mine if e.kind != "rolled"))
    nova = [e for e in timeline if e.component == "nova"]
    rolled_nova = {e.name for e in nova if e.kind == "rolled"}
    assert {"nova-api", "nova-conductor", "nova-scheduler", "nova-metadata"} <= rolled_nova, rolled_nova
    # The run record says the same: the step records of each component in that order.
    steps = [s for s in rehearsal.run["steps"] if s["action"].startswith("bootstrap:")]
    for name in c.SERVICES:
        recorded = [s["action"].removeprefix("bootstrap:") for s in steps if s["component"] == name]
        jobs = [e.name for e in timeline if e.component == name and e.kind == "job"]
        assert [s for s in recorded if s in jobs] == jobs, (name, recorded, jobs)


def _roll(cloud: c.Cloud, component: str) -> list[c.Pod]:
    """The roll, as the new ReplicaSet does it here: the component's pods end and start again (same venv: the
    bump is simulated), then must be Ready."""
    old = [
        p
        for p in cloud.pods.values()
        if cloud.rendered[component].comp.name == component
        and any(wl["metadata"]["name"] == p.workload for wl in cloud.rendered[component].workloads())
    ]
    for pod in old:
        if pod.proc.popen.poll() is None:
            os.killpg(pod.proc.popen.pid, signal.SIGTERM)
    for pod in old:
        try:
            pod.proc.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(pod.proc.popen.pid, signal.SIGKILL)
            pod.proc.popen.wait(timeout=10)
    pods = cloud.start_workloads(component)
    for pod in pods:
        ready = cloud.wait_ready(pod, timeout=c.READY_TIMEOUT)
        assert ready.ok, f"{pod.workload} not Ready after the roll: {ready.detail[-2000:]}"
    return pods


@pytest.mark.timeout(1200)
def test_real_scripts_in_the_engine_order(rehearsal: Rehearsal, cloud: c.Cloud) -> None:
    missing = [s for s in REPLAYED if not any(p.workload.startswith(f"{s}-") for p in cloud.pods.values())]
    if missing:
        pytest.skip(f"{', '.join(missing)} not deployed: run the whole tier (make test-openstack)")
    steps = {s: {st["name"]: st for st in cloud.rendered[s].comp.bootstrap} for s in REPLAYED}
    done: list[str] = []
    for event in rehearsal.timeline:
        if event.component not in REPLAYED or event.kind == "rolled":
            continue
        if event.kind == "write":
            _roll(cloud, event.component)
            done.append(f"{event.component}:roll")
            continue
        run = cloud.run_step(event.component, steps[event.component][event.name])
        record(event.component, f"upgrade {event.name}", "ok" if run.returncode == 0 else f"FAILED ({run.returncode})")
        assert run.returncode == 0, f"{event.component} {event.name} exited {run.returncode}:\n{run.output[-4000:]}"
        done.append(f"{event.component}:{event.name}")
        if event.name in CHECK_STEPS:
            assert re.search(r"upgrade check passed", run.output), run.output[-2000:]
        if event.name in AFTER_ROLL_STEPS:
            assert "online data migrations complete" in run.output, run.output[-2000:]
    record("upgrade", "real scripts, in the engine's order", " ".join(done))
    for s in REPLAYED:
        order = [d.split(":", 1)[1] for d in done if d.startswith(f"{s}:")]
        assert "upgrade-check" in order and "online-data-migrations" in order, order
        assert order.index("upgrade-check") < order.index("roll") < order.index("online-data-migrations"), order
    # The services answer after the upgrade.
    result = cloud.client("resource", "provider", "list", "-f", "json")
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize(("target", "code"), [(DOWNGRADE, "downgrade"), (SKIP, "release_skip")])
def test_downgrade_and_skip_refused_before_any_write(rehearsal: Rehearsal, target: str, code: str) -> None:
    head = subprocess.run(["git", "-C", str(rehearsal.repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    retag(rehearsal.repo, RELEASE_NEXT, target)
    try:
        plan = rehearsal.cli("plan", "-o", "json")
        assert plan.exit_code == 0, plan.stderr
        actions = {a["component"]: a for a in json.loads(plan.stdout)["actions"]}
        for name in c.SERVICES:
            assert actions[name]["action"] == "blocked", actions[name]
            assert actions[name]["reason_details"][0]["code"] in (code, "need_blocked"), actions[name]
        assert actions["keystone"]["reason_details"][0]["code"] == code
        rehearsal.sandbox.reset_stats()
        result = rehearsal.cli("apply")
        assert result.exit_code == 2 and result.stdout == "", result.stdout
        line = result.stderr.strip()
        assert "\n" not in line and line.startswith(f"error: cluster {CLUSTER}: refused before any write: ")
        assert f"component nova: OpenStack release {RELEASE_NEXT} -> {target}" in line, line
        assert rehearsal.sandbox.stats()["writes"] == 0
        record("upgrade", f"{RELEASE_NEXT} -> {target}", f"refused ({code}), exit 2, 0 writes")
    finally:  # back to the deployed commit for the next case
        subprocess.run(["git", "-C", str(rehearsal.repo), "reset", "-q", "--hard", head.stdout.strip()], check=True)
