"""One run path: a service run resolves, observes, plans and records once (counted on the sandbox's API stats).

Real pieces: the run queue's worker, the real Pipeline with the bootstrap engine, helm against the sandbox,
a git remote with a mirror, the SQLite store. Two components in two namespaces, each with a bootstrap step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import deploy_manager.run as run_module
from deploy_manager.bootstrap.engine import ACTION_PREFIX, BootstrapEngine
from deploy_manager.helm.runner import HelmRunner
from deploy_manager.kube.client import KubeClient
from deploy_manager.models.desired import BootstrapStep, DesiredCluster, DesiredComponent
from deploy_manager.models.observed import ObservedRelease
from deploy_manager.models.plan import Action, ActionKind, Plan, ReleaseState
from deploy_manager.models.run import RunStatus, StepRecord, StepStatus
from deploy_manager.pipeline import Pipeline
from deploy_manager.run import Snapshot, statuses_after_run
from deploy_manager.service import RunQueue
from deploy_manager.source.git import GitSource
from deploy_manager.store.sqlite import RunStore
from kubesim.testing import RunningSandbox
from tests.corelib import commit, desired_component, init_repo, write, write_chart, write_cluster, write_values

NAMESPACES = {"api": "run-a", "worker": "run-b"}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = init_repo(tmp_path / "remote")
    components: dict[str, Any] = {}
    for name, namespace in NAMESPACES.items():
        write_chart(root, f"charts/{name}")
        write(root / "bootstrap" / name / "migrate.sh.j2", "#!/bin/sh\necho migrate {{ component }}\n")
        components[name] = {
            "chart": f"charts/{name}",
            "namespace": namespace,
            "bootstrap": [{"name": "migrate", "image": "tool", "timeout": 60}],
        }
        write_values(root, "dev", name, {"images": {"tags": {"tool": "registry.local/tool:1"}}, "replicas": 1})
    write_cluster(root, "dev", {"namespace": "run-a", "components": components})
    commit(root, "two components with a bootstrap step each")
    return root


@pytest.fixture
def queue(repo: Path, sandbox: RunningSandbox, helm_bin: Path, tmp_path: Path) -> Iterator[RunQueue]:
    helm = HelmRunner(str(helm_bin), kubeconfig=Path(sandbox.kubeconfig))
    kube = KubeClient(kubeconfig=Path(sandbox.kubeconfig))
    store = RunStore(tmp_path / "state" / "deploy-manager.db")
    engine = BootstrapEngine(helm=helm, kube=kube)
    pipeline = Pipeline(helm=helm, kube=kube, store=store, hook=engine, cache_dir=tmp_path / "charts")
    source = GitSource(f"file://{repo}", mirror_dir=tmp_path / "mirrors")
    q = RunQueue(cluster="dev", branch="main", pipeline=pipeline, store=store, source=source, grace_seconds=60)
    q.start()
    try:
        assert q.wait_idle(120)
        first = store.list_runs(cluster="dev")[0]
        assert first.status is RunStatus.succeeded, first.error  # the start-up run deployed both
        yield q
    finally:
        q.stop()
        store.close()
        kube.close()


def count_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> Callable[[], int]:
    calls = 0
    real = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return lambda: calls


def reads(sandbox: RunningSandbox, resource: str) -> int:
    return int(sandbox.stats()["by_resource"].get(resource, {}).get("list", 0))


def test_a_no_op_service_run_lists_secrets_once_and_jobs_once_per_namespace(
    queue: RunQueue, sandbox: RunningSandbox
) -> None:
    sandbox.reset_stats()
    result = queue.trigger("manual", force=True)  # the deployed commit again: nothing to do
    assert result.status == "queued" and queue.wait_idle(60)
    run = queue.store.get_run(result.run_id)  # type: ignore[arg-type]
    assert run is not None and run.status is RunStatus.succeeded
    assert {s.status for s in run.steps} == {StepStatus.skipped}
    stats = sandbox.stats()
    assert stats["writes"] == 0
    assert reads(sandbox, "secrets") == 1  # one list of the release records, no second observe
    assert reads(sandbox, "jobs.batch") <= len(NAMESPACES)  # at most one list per namespace
    assert "get" not in stats["by_resource"].get("jobs.batch", {})
    assert {r.state for r in queue.store.list_releases("dev")} == {"in-sync"}


def test_a_one_component_change_resolves_once_and_plans_once(
    queue: RunQueue, repo: Path, sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolves = count_calls(monkeypatch, GitSource, "resolve")
    plans = count_calls(monkeypatch, run_module, "make_plan")
    write_values(repo, "dev", "worker", {"images": {"tags": {"tool": "registry.local/tool:1"}}, "replicas": 2})
    sha = commit(repo, "worker: two replicas")
    sandbox.reset_stats()
    result = queue.trigger("github", commit=sha)
    assert result.status == "queued" and queue.wait_idle(120)
    run = queue.store.get_run(result.run_id)  # type: ignore[arg-type]
    assert run is not None and run.status is RunStatus.succeeded, run and run.error
    assert run.commit == sha
    actions = {(s.component, s.action): s.status for s in run.steps}
    assert actions[("worker", "upgrade")] is StepStatus.succeeded
    assert actions[("worker", ACTION_PREFIX + "migrate")] is StepStatus.skipped  # its digest did not change
    assert actions[("api", "none")] is StepStatus.skipped
    assert resolves() == 1, "the commit is resolved once per run (by the queue), not again by the run"
    assert plans() == 1, "one run plans once: the releases after it come from the run, not a second plan"
    assert reads(sandbox, "jobs.batch") <= len(NAMESPACES)
    # (Secret lists are not counted here: helm itself lists a release's records when it upgrades it.)
    stored = {r.component: r for r in queue.store.list_releases("dev")}
    assert {r.state for r in stored.values()} == {"in-sync"}
    assert stored["worker"].revision == 2 and {r.commit for r in stored.values()} == {sha}


# -- the releases after a run, without a second plan (pure) -------------------------------------------------
def _component(name: str, digest: str, *, bootstrap: bool = False) -> DesiredComponent:
    steps = (BootstrapStep(name="migrate", script=f"bootstrap/{name}/migrate.sh.j2", digest="b" * 64),)
    return desired_component(name, bootstrap=steps if bootstrap else (), digest=digest)


def _observed(name: str, digest: str, status: str = "deployed", commit: str = "old") -> ObservedRelease:
    return ObservedRelease("os", name, 2, status, labels={"digest": digest, "commit": commit})


@pytest.mark.parametrize(
    ("action", "state", "step", "after", "bootstrap", "expected"),
    [
        # Nothing to do: the snapshot's verdict, at the run's commit.
        (ActionKind.none, ReleaseState.in_sync, StepStatus.skipped, _observed("c", "d1"), False, ("in-sync", "new")),
        # Written and now at the desired digest: in sync, at the run's commit.
        (
            ActionKind.upgrade,
            ReleaseState.out_of_sync,
            StepStatus.succeeded,
            _observed("c", "d1", commit="new"),
            False,
            ("in-sync", "new"),
        ),
        # helm's write failed: the release record says so.
        (
            ActionKind.upgrade,
            ReleaseState.out_of_sync,
            StepStatus.failed,
            _observed("c", "d1", "failed", "new"),
            False,
            ("failed", "new"),
        ),
        # Blocked by a failed need: untouched, the plan's verdict stands, at the commit helm recorded.
        (
            ActionKind.upgrade,
            ReleaseState.out_of_sync,
            StepStatus.blocked,
            _observed("c", "d0"),
            False,
            ("out-of-sync", "old"),
        ),
        # helm wrote, then an `after` bootstrap step failed: in sync by its labels, but a step is left to finish.
        (
            ActionKind.upgrade,
            ReleaseState.out_of_sync,
            StepStatus.failed,
            _observed("c", "d1", commit="new"),
            True,
            ("out-of-sync", "new"),
        ),
    ],
)
def test_statuses_after_run(
    action: ActionKind,
    state: ReleaseState,
    step: StepStatus,
    after: ObservedRelease,
    bootstrap: bool,
    expected: tuple[str, str],
) -> None:
    desired = DesiredCluster(
        name="dev", commit="new", namespace="os", components={"c": _component("c", "d1", bootstrap=bootstrap)}
    )
    planned = Action(component="c", release="c", namespace="os", action=action, state=state)
    snap = Snapshot(desired, {after.id: _observed("c", "d0")}, Plan(cluster="dev", commit="new", actions=(planned,)))
    steps = [StepRecord("c", "c", "os", action.value, step)]
    (status,) = statuses_after_run(snap, steps, {after.id: after})
    assert (status.state, status.commit) == expected
    assert status.deployed_commit == after.commit and status.revision == 2
