"""The bootstrap engine end to end: the demo cluster (+ glance, nova) on the sandbox with the real helm.

Every test gets its own sandbox (the function-scoped `sandbox` fixture: the demo's ingress chart owns a
cluster-scoped IngressClass, so two installs cannot share one), its own repo and its own run database.
The order in which objects were created comes from the sandbox's store events (resourceVersion order),
which is what a Kubernetes watch would report.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy_manager.bootstrap.engine import ACTION_PREFIX, BootstrapEngine
from deploy_manager.bootstrap.manifests import LABEL_COMPONENT, LABEL_STEP
from deploy_manager.helm.runner import HelmRunner
from deploy_manager.models.run import RunRecord, RunStatus, StepStatus
from deploy_manager.pipeline import Pipeline
from deploy_manager.source.git import GitSource
from deploy_manager.store.sqlite import RunStore
from kubesim.testing import RunningSandbox
from tests.bootstrap.stack import (
    CLUSTER,
    StoreEvents,
    declared_steps,
    deployer,
    edit_values,
    read_cluster,
)

JOBS = ("batch", "jobs")
DEPLOYMENTS = ("apps", "deployments")
SECRETS = ("", "secrets")
REVISION = "deployment.kubernetes.io/revision"


class Recorder(StoreEvents):
    """ADDED/MODIFIED events of the sandbox's store, in commit (resourceVersion) order."""

    def added(self, gr: tuple[str, str], namespace: str, since: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return [
                o
                for rv, kind, g, o in self.events
                if kind == "ADDED" and g == gr and rv > since and o["metadata"].get("namespace") == namespace
            ]


@dataclass
class Env:
    sandbox: Any
    repo: Path
    namespace: str
    store: RunStore
    pipeline: Pipeline
    recorder: Recorder
    helm: HelmRunner

    def apply(self) -> RunRecord:
        return self.pipeline.apply(GitSource(str(self.repo)), CLUSTER, "main", trigger="test")

    def releases(self) -> dict[str, str]:
        """release -> helm status, for every declared component that has a release."""
        out: dict[str, str] = {}
        for name in declared_steps(self.repo):
            status = self.helm.status(name, self.namespace)
            if status is not None:
                out[name] = str(status["info"]["status"])
        return out

    def rv(self) -> int:
        return int(self.sandbox.state.store.resource_version)

    def jobs(self, component: str, step: str) -> list[dict[str, Any]]:
        return [
            j
            for j in self.sandbox.state.store.list(JOBS, self.namespace)[0]
            if j["metadata"]["labels"][LABEL_COMPONENT] == component and j["metadata"]["labels"][LABEL_STEP] == step
        ]

    def deployment(self, name: str) -> dict[str, Any]:
        obj = self.sandbox.state.store.get(DEPLOYMENTS, self.namespace, name)
        assert obj is not None, name
        return dict(obj)

    def revisions(self) -> dict[str, str]:
        return {
            d["metadata"]["name"]: d["metadata"].get("annotations", {}).get(REVISION, "")
            for d in self.sandbox.state.store.list(DEPLOYMENTS, self.namespace)[0]
        }

    def job_steps(self, since: int = 0) -> list[tuple[str, str]]:
        """(component, step) of the Jobs created since `since`, in creation order."""
        return [
            (j["metadata"]["labels"][LABEL_COMPONENT], j["metadata"]["labels"][LABEL_STEP])
            for j in self.recorder.added(JOBS, self.namespace, since)
        ]


@pytest.fixture
def env(sandbox: RunningSandbox, helm_bin: Path, tmp_path: Path) -> Iterator[Env]:
    recorder = Recorder()
    with deployer(sandbox, helm_bin, tmp_path, recorder) as d:
        yield Env(sandbox, d.repo, read_cluster(d.repo)["namespace"], d.store, d.pipeline, recorder, d.helm)


def component_steps(run: RunRecord) -> dict[str, StepStatus]:
    return {s.component: s.status for s in run.steps if not s.action.startswith(ACTION_PREFIX)}


def bootstrap_steps(run: RunRecord, component: str) -> list[tuple[str, StepStatus]]:
    return [
        (s.action.removeprefix(ACTION_PREFIX), s.status)
        for s in run.steps
        if s.component == component and s.action.startswith(ACTION_PREFIX)
    ]


def assert_creation_order(env: Env, since: int) -> None:
    """Within a component: `before` steps then `after` steps, each in declared order. Across components:
    a component's first Job comes after every Job of each component it needs (those had finished)."""
    declared = declared_steps(env.repo)
    spec = read_cluster(env.repo)["components"]
    jobs = env.recorder.added(JOBS, env.namespace, since)
    rvs: dict[str, list[int]] = {}
    for comp in declared:
        mine = [
            (j["metadata"]["labels"][LABEL_STEP], int(j["metadata"]["resourceVersion"]))
            for j in jobs
            if j["metadata"]["labels"][LABEL_COMPONENT] == comp
        ]
        want = [s for s, w in declared[comp] if w == "before"] + [s for s, w in declared[comp] if w == "after"]
        assert [s for s, _ in mine] == want, comp
        rvs[comp] = [rv for _, rv in mine]
    for comp, body in spec.items():
        for need in body.get("needs") or []:
            if rvs.get(comp) and rvs.get(need):
                assert min(rvs[comp]) > max(rvs[need]), (comp, need)


def test_fresh_install_runs_every_step_in_declared_order_then_reapply_writes_nothing(env: Env) -> None:
    since = env.rv()
    env.sandbox.reset_stats()
    run = env.apply()

    assert run.status is RunStatus.succeeded, run.error
    assert set(component_steps(run).values()) == {StepStatus.succeeded}
    assert env.releases() == {c: "deployed" for c in declared_steps(env.repo)}
    created = env.job_steps(since)
    assert_creation_order(env, since)
    n_steps = sum(len(s) for s in declared_steps(env.repo).values())
    assert len(created) == n_steps
    jobs_stats = env.sandbox.stats()["by_resource"]["jobs.batch"]
    assert jobs_stats["create"] == n_steps and "delete" not in jobs_stats  # one Job per step, no retries
    scripts = [
        c for c in env.recorder.added(("", "configmaps"), env.namespace, since) if LABEL_STEP in c["metadata"]["labels"]
    ]
    assert sorted(c["metadata"]["name"] for c in scripts) == sorted(
        j["metadata"]["name"] for j in env.recorder.added(JOBS, env.namespace, since)
    )  # one script ConfigMap per Job, named after it
    # keystone's `before` Jobs were created before its release Secret, its `after` Jobs after it.
    rv_of = {
        (g, o["metadata"]["name"]): int(o["metadata"]["resourceVersion"])
        for g in (JOBS, SECRETS)
        for o in env.recorder.added(g, env.namespace, since)
    }
    release_rv = rv_of[(SECRETS, "sh.helm.release.v1.keystone.v1")]
    keystone_jobs = {
        j["metadata"]["labels"][LABEL_STEP]: int(j["metadata"]["resourceVersion"])
        for j in env.recorder.added(JOBS, env.namespace, since)
        if j["metadata"]["labels"][LABEL_COMPONENT] == "keystone"
    }
    for step, when in declared_steps(env.repo)["keystone"]:
        assert (keystone_jobs[step] < release_rv) == (when == "before"), step
    # Every step is in the run record, succeeded, in declared order within its phase.
    assert [s for s, _ in bootstrap_steps(run, "nova")] == [s for s, _ in declared_steps(env.repo)["nova"]]
    assert all(st is StepStatus.succeeded for _, st in bootstrap_steps(run, "keystone"))

    env.sandbox.reset_stats()
    again = env.apply()
    assert again.status is RunStatus.succeeded
    assert set(component_steps(again).values()) == {StepStatus.skipped}
    stats = env.sandbox.stats()
    assert stats["writes"] == 0
    # What checking the steps costs a no-op apply: one Job list for the cluster's namespace, nothing else.
    assert stats["by_resource"]["jobs.batch"] == {"list": 1}
    assert env.job_steps(since) == created


def test_config_change_upgrades_and_rolls_keystone_only_without_rerunning_migrations(env: Env) -> None:
    first = env.apply()
    assert first.status is RunStatus.succeeded, [s.error for s in first.steps if s.error]
    before = env.revisions()
    since = env.rv()

    edit_values(env.repo, "keystone", lambda v: v["conf"]["keystone"]["token"].update(expiration=7200))
    run = env.apply()

    assert run.status is RunStatus.succeeded, run.error
    assert {c for c, st in component_steps(run).items() if st is StepStatus.succeeded} == {"keystone"}
    assert env.job_steps(since) == []  # no step reads conf.keystone.token: nothing re-ran
    assert {s for s, st in bootstrap_steps(run, "keystone")} == {s for s, _ in declared_steps(env.repo)["keystone"]}
    assert {st for _, st in bootstrap_steps(run, "keystone")} == {StepStatus.skipped}
    after = env.revisions()
    rolled = {name for name in after if after[name] != before.get(name)}
    assert rolled == {"keystone-api"}
    assert int(after["keystone-api"]) == int(before["keystone-api"]) + 1


def test_image_bump_reruns_nova_migrations_before_the_upgrade_and_rolls_nova(env: Env) -> None:
    first = env.apply()
    assert first.status is RunStatus.succeeded, [s.error for s in first.steps if s.error]
    before = env.revisions()
    since = env.rv()
    common = yaml.safe_load((env.repo / "values" / "_common" / "nova.yaml").read_text())
    new_tag = "quay.io/airshipit/nova:2027.1-ubuntu_noble"  # the next release (the guard refuses a downgrade)
    bumped = {k for k, v in common["images"]["tags"].items() if v.startswith("quay.io/airshipit/nova:")}
    assert {"nova_db_sync", "nova_api"} <= bumped

    edit_values(
        env.repo,
        "nova",
        lambda v: v.setdefault("images", {}).setdefault("tags", {}).update(dict.fromkeys(bumped, new_tag)),
    )
    run = env.apply()

    assert run.status is RunStatus.succeeded, run.error
    assert {c for c, st in component_steps(run).items() if st is StepStatus.succeeded} == {"nova"}
    spec = read_cluster(env.repo)["components"]["nova"]["bootstrap"]
    rerun = [(st["name"], st.get("when", "before")) for st in spec if st["image"] in bumped or st.get("always")]
    assert ("db-sync", "before") in rerun and ("api-db-sync", "before") in rerun
    assert env.job_steps(since) == [("nova", s) for s, w in rerun if w == "before"] + [
        ("nova", s) for s, w in rerun if w == "after"
    ]
    unchanged = {st["name"] for st in spec} - {s for s, _ in rerun}
    assert {s for s, st in bootstrap_steps(run, "nova") if st is StepStatus.skipped} == unchanged
    new_jobs = {j["metadata"]["labels"][LABEL_STEP]: j for j in env.recorder.added(JOBS, env.namespace, since)}
    assert {j["spec"]["template"]["spec"]["containers"][0]["image"] for j in new_jobs.values()} == {new_tag}
    release = next(
        int(o["metadata"]["resourceVersion"])
        for o in env.recorder.added(SECRETS, env.namespace, since)
        if o["metadata"]["name"] == "sh.helm.release.v1.nova.v2"
    )
    for step, when in rerun:  # migrations before the new release revision, the rest after it
        assert (int(new_jobs[step]["metadata"]["resourceVersion"]) < release) == (when == "before"), step
    after = env.revisions()
    rolled = {name for name in after if after[name] != before.get(name)}
    assert "nova-api" in rolled and all(name.startswith("nova-") for name in rolled), rolled


@pytest.mark.kubesim_only("fails a product-rendered bootstrap Job by name through /_sandbox/")
def test_failing_db_sync_fails_keystone_blocks_dependents_and_a_reapply_resumes(env: Env) -> None:
    fault = env.sandbox.inject_fault(type="job-fail", namespace=env.namespace, name="keystone-db-sync-*")
    run = env.apply()

    assert run.status is RunStatus.failed
    comps = component_steps(run)
    assert comps["keystone"] is StepStatus.failed
    assert comps["glance"] is StepStatus.blocked and comps["nova"] is StepStatus.blocked
    assert comps["rabbitmq"] is StepStatus.succeeded and comps["memcached"] is StepStatus.succeeded
    assert bootstrap_steps(run, "keystone") == [("db-sync", StepStatus.failed)]
    failed = next(s for s in run.steps if s.action == ACTION_PREFIX + "db-sync")
    assert "keystone-db-sync-" in failed.error
    tail_lines = failed.output_tail.splitlines()
    assert 0 < len(tail_lines) <= 50 and tail_lines[-1] == "kubesim: pod phase Failed"
    assert "runs: /bin/bash /bootstrap/script.sh" in failed.output_tail
    assert failed.exit_code == 1
    keystone = next(s for s in run.steps if s.component == "keystone" and s.action == "install")
    assert "bootstrap step db-sync of keystone failed" in keystone.error
    assert keystone.output_tail == failed.output_tail
    assert "keystone" not in env.releases()  # no upgrade after it
    [job] = env.jobs("keystone", "db-sync")

    env.sandbox.clear_faults()
    del fault
    since = env.rv()
    rerun = env.apply()

    assert rerun.status is RunStatus.succeeded, rerun.error
    created = env.job_steps(since)
    assert created[0] == ("keystone", "db-sync")  # the failed Job was deleted and created again
    assert [s for s, _ in bootstrap_steps(rerun, "keystone")] == [s for s, _ in declared_steps(env.repo)["keystone"]]
    [retried] = env.jobs("keystone", "db-sync")
    assert retried["metadata"]["name"] == job["metadata"]["name"]
    assert retried["metadata"]["uid"] != job["metadata"]["uid"]


@pytest.mark.kubesim_only("fails a product-rendered bootstrap Job by name through /_sandbox/")
def test_failed_step_resumes_from_itself_earlier_steps_skipped(env: Env) -> None:
    steps = declared_steps(env.repo)["nova"]
    before = [s for s, w in steps if w == "before"]
    after = [s for s, w in steps if w == "after"]
    assert len(before) >= 2
    broken = before[1]  # the second migration fails: the first already ran
    env.sandbox.inject_fault(type="job-fail", namespace=env.namespace, name=f"nova-{broken}-*")
    run = env.apply()
    assert component_steps(run)["nova"] is StepStatus.failed
    assert bootstrap_steps(run, "nova") == [(before[0], StepStatus.succeeded), (broken, StepStatus.failed)]
    assert "nova" not in env.releases()

    env.sandbox.clear_faults()
    since = env.rv()
    rerun = env.apply()
    assert rerun.status is RunStatus.succeeded, rerun.error
    assert bootstrap_steps(rerun, "nova") == [(before[0], StepStatus.skipped)] + [
        (s, StepStatus.succeeded) for s in before[1:] + after
    ]
    assert env.job_steps(since) == [("nova", s) for s in before[1:] + after]


def test_lost_database_never_reruns_migrations(env: Env, tmp_path: Path) -> None:
    first = env.apply()
    assert first.status is RunStatus.succeeded, [s.error for s in first.steps if s.error]
    env.store.close()
    for f in (tmp_path / "state").iterdir():
        f.unlink()
    env.store = RunStore(tmp_path / "state" / "deploy-manager.db")
    env.pipeline.store = env.store
    engine = env.pipeline.hook
    assert isinstance(engine, BootstrapEngine)
    engine.store = env.store
    since = env.rv()

    edit_values(env.repo, "keystone", lambda v: v["conf"]["keystone"]["token"].update(expiration=1800))
    run = env.apply()

    assert run.status is RunStatus.succeeded, run.error
    assert run.id == 1  # a new database
    assert component_steps(run)["keystone"] is StepStatus.succeeded
    assert env.job_steps(since) == []
    assert {st for _, st in bootstrap_steps(run, "keystone")} == {StepStatus.skipped}


@pytest.mark.kubesim_only("fails a product-rendered bootstrap Job by name through /_sandbox/")
def test_failed_after_step_is_planned_again_at_the_same_commit(env: Env) -> None:
    after = [s for s, w in declared_steps(env.repo)["keystone"] if w == "after"]
    env.sandbox.inject_fault(type="job-fail", namespace=env.namespace, name=f"keystone-{after[0]}-*")
    run = env.apply()
    assert component_steps(run)["keystone"] is StepStatus.failed
    assert component_steps(run)["glance"] is StepStatus.blocked
    assert env.releases()["keystone"] == "deployed"  # helm wrote it; the step after it failed
    states = {r.component: r.state for r in env.store.list_releases(CLUSTER)}
    assert states["keystone"] == "out-of-sync" and states["rabbitmq"] == "in-sync"  # what /releases serves

    env.sandbox.clear_faults()
    plan = env.pipeline.plan(GitSource(str(env.repo)), CLUSTER, "main")
    keystone = plan.action_for("keystone")
    assert keystone.action.value == "upgrade"
    assert [r.code for r in keystone.reasons] == ["bootstrap_incomplete"]
    assert keystone.reasons[0].paths == tuple(after)
    since = env.rv()
    rerun = env.apply()

    assert rerun.status is RunStatus.succeeded, rerun.error
    assert env.job_steps(since)[: len(after)] == [("keystone", s) for s in after]
    done = {s for s, st in bootstrap_steps(rerun, "keystone") if st is StepStatus.skipped}
    assert done == {s for s, w in declared_steps(env.repo)["keystone"] if w == "before"}
    env.sandbox.reset_stats()
    assert env.apply().status is RunStatus.succeeded
    assert env.sandbox.stats()["writes"] == 0
