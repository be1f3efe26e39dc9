"""The run queue: one run at a time, storms coalesced into one pending run, start-up recovery, polling.

Real git repositories (a `file://` remote and its bare mirror), the real SQLite RunStore, a real worker
thread; the pipeline is `StandInPipeline` (records what it applies, can be held open).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy_manager.lease import ClusterLease
from deploy_manager.models.errors import SourceError, UnknownRevision
from deploy_manager.models.run import RunStatus
from deploy_manager.service import QueueStopping, RunQueue, superseded_components
from deploy_manager.source.git import GitSource
from deploy_manager.store.sqlite import RunStore
from tests.corelib import commit, git, readme_repo, write
from tests.servicelib import Concurrency, MemoryLeaseBackend, StandInPipeline, wait_for


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return readme_repo(tmp_path / "remote")


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    s = RunStore(tmp_path / "state" / "deploy-manager.db")
    yield s
    s.close()


def new_commit(repo: Path, text: str) -> str:
    write(repo / "README", text)
    return commit(repo, text)


def make_queue(repo: Path, store: RunStore, pipeline: StandInPipeline, tmp_path: Path, **options: Any) -> RunQueue:
    source = GitSource(f"file://{repo}", mirror_dir=tmp_path / "mirrors")
    return RunQueue(cluster="dev", branch="main", pipeline=pipeline, store=store, source=source, grace_seconds=30,
                    **options)


@contextlib.contextmanager
def running_queue(queue: RunQueue, gate: threading.Event | None = None) -> Iterator[RunQueue]:
    """Run `queue`; on the way out open `gate` first (a held run must finish before stop returns), then stop."""
    queue.start()
    try:
        yield queue
    finally:
        if gate is not None:
            gate.set()
        queue.stop()


def test_a_trigger_runs_once_and_records_the_commit(repo: Path, store: RunStore, tmp_path: Path) -> None:
    pipeline = StandInPipeline(store)
    with running_queue(make_queue(repo, store, pipeline, tmp_path)) as queue:
        assert queue.wait_idle(20)  # the start-up re-plan deploys the head
        head = git(repo, "rev-parse", "HEAD")
        assert pipeline.applied == [("startup", head)]
        sha = new_commit(repo, "v1")
        result = queue.trigger("github", commit=sha)
        assert result.status == "queued" and result.run_id is not None
        assert queue.wait_idle(20)
        run = store.get_run(result.run_id)
        assert run is not None and run.status is RunStatus.succeeded and run.commit == sha
        assert queue.deployed_commit == sha


def test_a_storm_during_a_run_collapses_into_one_pending_run_for_the_newest_commit(
    repo: Path, store: RunStore, tmp_path: Path
) -> None:
    gate = threading.Event()
    pipeline = StandInPipeline(store, gate=gate)
    with running_queue(make_queue(repo, store, pipeline, tmp_path), gate) as queue:
        pipeline.started.wait(20)  # the start-up run is now held open
        first_id = queue.running_run_id
        commits = [new_commit(repo, f"v{i}") for i in range(30)]
        results = [queue.trigger("github", commit=sha) for sha in commits]
        assert results[0].status == "queued"
        pending_id = results[0].run_id
        assert all(r.status == "coalesced" and r.run_id == pending_id for r in results[1:])
        assert queue.depth == 1
        # A repeat of the pending commit adds nothing either.
        assert queue.trigger("jenkins", commit=commits[-1]).run_id == pending_id
        gate.set()
        assert queue.wait_idle(20)
        runs = store.list_runs(cluster="dev")
        assert [r.id for r in runs] == [pending_id, first_id]
        assert pipeline.applied[-1] == ("github", commits[-1])
        assert queue.deployed_commit == commits[-1]


def test_a_trigger_for_the_deployed_or_running_commit_adds_nothing(
    repo: Path, store: RunStore, tmp_path: Path
) -> None:
    gate = threading.Event()
    pipeline = StandInPipeline(store, gate=gate)
    with running_queue(make_queue(repo, store, pipeline, tmp_path), gate) as queue:
        pipeline.started.wait(20)
        head = git(repo, "rev-parse", "HEAD")
        running = queue.trigger("github", commit=head)
        assert running.status == "coalesced" and running.run_id == queue.running_run_id
        gate.set()
        assert queue.wait_idle(20)
        deployed = queue.trigger("github", commit=head)
        assert deployed.status == "coalesced" and deployed.run_id == running.run_id
        assert len(store.list_runs(cluster="dev")) == 1


def test_an_explicit_revision_is_deployed_exactly(repo: Path, store: RunStore, tmp_path: Path) -> None:
    old = git(repo, "rev-parse", "HEAD")
    git(repo, "tag", "v0")
    new_commit(repo, "v1")
    pipeline = StandInPipeline(store)
    with running_queue(make_queue(repo, store, pipeline, tmp_path)) as queue:
        assert queue.wait_idle(20)
        result = queue.trigger("manual", rev="v0")
        assert result.status == "queued"
        assert queue.wait_idle(20)
        assert pipeline.applied[-1] == ("manual", old)


def test_start_up_marks_dead_runs_interrupted_and_replans_the_head(
    repo: Path, store: RunStore, tmp_path: Path
) -> None:
    head = git(repo, "rev-parse", "HEAD")
    done = store.create_run(cluster="dev", commit=head, trigger="github", status="running")
    store.finish_run(done, RunStatus.succeeded)
    dead = store.create_run(cluster="dev", commit=head, trigger="github", status="running")
    pipeline = StandInPipeline(store)
    with running_queue(make_queue(repo, store, pipeline, tmp_path)) as queue:
        assert queue.wait_idle(20)
        dead_run = store.get_run(dead)
        assert dead_run is not None and dead_run.status is RunStatus.interrupted
        # The head was deployed before, but a run died: re-plan it once (forced), not twice.
        assert pipeline.applied == [("startup", head)]


def test_start_up_with_the_head_deployed_adds_no_run(repo: Path, store: RunStore, tmp_path: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    done = store.create_run(cluster="dev", commit=head, trigger="github", status="running")
    store.finish_run(done, RunStatus.succeeded)
    pipeline = StandInPipeline(store)
    with running_queue(make_queue(repo, store, pipeline, tmp_path)) as queue:
        assert queue.wait_idle(20)
        wait_for(lambda: queue._last_polled == head)
        assert pipeline.applied == []
        assert [r.id for r in store.list_runs(cluster="dev")] == [done]
        finished = store.get_run(done).finished_at  # type: ignore[union-attr]
        gauge = queue.metrics.registry.get_sample_value("deploy_manager_last_success_timestamp_seconds")
        assert gauge == pytest.approx(dt.datetime.fromisoformat(finished).timestamp())


def test_a_fresh_database_over_a_cluster_already_at_the_head_adds_no_run(
    repo: Path, store: RunStore, tmp_path: Path
) -> None:
    pipeline = StandInPipeline(store)
    first = make_queue(repo, store, pipeline, tmp_path)
    first.start()
    assert first.wait_idle(20)
    first.stop()
    # A new pod with an empty database (say, a lost volume) over the same cluster.
    fresh = RunStore(tmp_path / "fresh" / "deploy-manager.db")
    pipeline.store = fresh
    second = RunQueue(cluster="dev", branch="main", pipeline=pipeline, store=fresh,
                      source=GitSource(f"file://{repo}", mirror_dir=tmp_path / "mirrors2"), grace_seconds=30)
    second.start()
    try:
        assert second.wait_idle(20)
        assert fresh.list_runs(cluster="dev") == [] and len(pipeline.applied) == 1
        assert second.deployed_commit == git(repo, "rev-parse", "HEAD")
        # ... and a new commit still deploys.
        sha = new_commit(repo, "v1")
        assert second.trigger("github", commit=sha).status == "queued"
        assert second.wait_idle(20)
        assert pipeline.applied[-1] == ("github", sha)
    finally:
        second.stop()
        fresh.close()


def test_poll_triggers_on_a_new_commit_only(repo: Path, store: RunStore, tmp_path: Path) -> None:
    pipeline = StandInPipeline(store)
    with running_queue(make_queue(repo, store, pipeline, tmp_path)) as queue:
        assert queue.wait_idle(20)
        assert queue.poll() is None  # nothing new
        sha = new_commit(repo, "v1")
        result = queue.poll()
        assert result is not None and result.status == "queued"
        assert queue.wait_idle(20)
        assert pipeline.applied[-1] == ("poll", sha)
        assert queue.poll() is None


def test_a_failed_fetch_fails_the_run_with_the_reason(repo: Path, store: RunStore, tmp_path: Path) -> None:
    pipeline = StandInPipeline(store)
    with running_queue(make_queue(repo, store, pipeline, tmp_path)) as queue:
        assert queue.wait_idle(20)
        (repo / ".git").rename(tmp_path / "moved.git")  # the remote is gone
        result = queue.trigger("manual")
        assert queue.wait_idle(20)
        assert result.run_id is not None
        run = store.get_run(result.run_id)
        assert run is not None and run.status is RunStatus.failed
        assert "fetch" in run.error
        assert run.started_at is not None and run.finished_at is not None and run.started_at <= run.finished_at
        assert queue.last_fetch_error


def test_an_unknown_revision_fails_the_run(repo: Path, store: RunStore, tmp_path: Path) -> None:
    pipeline = StandInPipeline(store)
    with running_queue(make_queue(repo, store, pipeline, tmp_path)) as queue:
        assert queue.wait_idle(20)
        result = queue.trigger("manual", rev="no-such-branch")
        assert queue.wait_idle(20)
        assert result.run_id is not None
        run = store.get_run(result.run_id)
        assert run is not None and run.status is RunStatus.failed and "no-such-branch" in run.error


def test_resolve_revision_fetches_first_and_names_an_unknown_one(repo: Path, store: RunStore, tmp_path: Path) -> None:
    queue = make_queue(repo, store, StandInPipeline(store), tmp_path)
    queue.fetch_head()
    sha = new_commit(repo, "v1")
    git(repo, "tag", "v1")
    assert queue.resolve_revision("v1") == sha  # pushed after the last fetch: found by the check's own fetch
    with pytest.raises(UnknownRevision, match="'no-such-tag'"):
        queue.resolve_revision("no-such-tag")
    (repo / ".git").rename(tmp_path / "moved.git")  # the remote is gone: the mirror still answers what it has
    assert queue.resolve_revision(sha[:10]) == sha
    with pytest.raises(SourceError, match="fetch failed"):
        queue.resolve_revision("no-such-tag")
    assert queue.last_fetch_error
    assert store.list_runs(cluster="dev") == []  # checking a revision never creates a run


def test_stop_waits_for_the_running_run_and_refuses_new_triggers(
    repo: Path, store: RunStore, tmp_path: Path
) -> None:
    gate = threading.Event()
    pipeline = StandInPipeline(store, gate=gate)
    queue = make_queue(repo, store, pipeline, tmp_path)
    queue.start()
    pipeline.started.wait(20)
    run_id = queue.running_run_id
    stopper = threading.Thread(target=queue.stop)
    stopper.start()
    stopper.join(0.3)
    assert stopper.is_alive()  # still waiting for the run: helm is never cut off
    with pytest.raises(QueueStopping, match="shutting down"):
        queue.trigger("manual")
    gate.set()
    stopper.join(20)
    assert not stopper.is_alive()
    assert run_id is not None
    run = store.get_run(run_id)
    assert run is not None and run.status is RunStatus.succeeded


def test_two_instances_sharing_a_cluster_lease_never_run_together(
    repo: Path, store: RunStore, tmp_path: Path
) -> None:
    backend = MemoryLeaseBackend()
    concurrency = Concurrency()
    gates = [threading.Event(), threading.Event()]
    queues, pipelines = [], []
    for i, gate in enumerate(gates):
        # Each instance has its own database, as two pods would; they share only the cluster (the Lease).
        own_store = RunStore(tmp_path / f"state{i}" / "deploy-manager.db")
        pipeline = StandInPipeline(own_store, gate=gate, concurrency=concurrency)
        source = GitSource(f"file://{repo}", mirror_dir=tmp_path / f"mirrors{i}")
        lease = ClusterLease(backend, identity=f"pod-{i}_1", duration_seconds=2, renew_seconds=0.2, retry_seconds=0.05)
        queues.append(RunQueue(cluster="dev", branch="main", pipeline=pipeline, store=own_store, source=source,
                               lease=lease, grace_seconds=30))
        pipelines.append(pipeline)
    try:
        for q in queues:
            q.start()
        first = wait_for(lambda: next((i for i, p in enumerate(pipelines) if p.started.is_set()), None) is not None)
        assert first
        running = next(i for i, p in enumerate(pipelines) if p.started.is_set())
        other = 1 - running
        time.sleep(0.5)  # the other instance is waiting for the Lease, not running
        assert not pipelines[other].started.is_set() and concurrency.max_active == 1
        gates[running].set()
        assert pipelines[other].started.wait(10)
        gates[other].set()
        for q in queues:
            assert q.wait_idle(20)
        assert concurrency.max_active == 1
        assert [len(p.applied) for p in pipelines] == [1, 1]
    finally:
        for gate in gates:
            gate.set()
        for q in queues:
            q.stop()
            q.store.close()  # type: ignore[attr-defined]


def test_a_long_storm_of_fast_runs_still_costs_at_most_two_runs(repo: Path, store: RunStore, tmp_path: Path) -> None:
    pipeline = StandInPipeline(store)  # runs finish in milliseconds, far faster than the storm lasts
    with running_queue(make_queue(repo, store, pipeline, tmp_path, quiet_seconds=1.0, max_delay_seconds=30)) as queue:
        assert queue.wait_idle(20)
        before = len(store.list_runs(cluster="dev"))
        shas = []
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:  # a push every ~20 ms for 1.5 s
            shas.append(new_commit(repo, f"v{len(shas)}"))
            queue.trigger("github", commit=shas[-1])
        assert queue.wait_idle(20)
        assert len(store.list_runs(cluster="dev")) - before <= 2
        assert queue.deployed_commit == shas[-1]


def test_after_a_quiet_spell_a_trigger_starts_at_once_inside_a_burst_it_waits(
    repo: Path, store: RunStore, tmp_path: Path
) -> None:
    pipeline = StandInPipeline(store)
    with running_queue(make_queue(repo, store, pipeline, tmp_path, quiet_seconds=1.5)) as queue:
        assert queue.wait_idle(20)
        time.sleep(1.6)  # quiet spell since the start-up trigger
        first = new_commit(repo, "v1")
        started = time.monotonic()
        assert queue.trigger("github", commit=first).status == "queued"
        assert queue.wait_idle(20)
        assert time.monotonic() - started < 1.2  # leading edge: no waiting for the quiet period
        second = new_commit(repo, "v2")
        started = time.monotonic()
        # Right after the previous trigger: part of a burst, so it waits for the quiet period.
        assert queue.trigger("github", commit=second).status == "queued"
        assert queue.wait_idle(20)
        assert time.monotonic() - started >= 1.4
        assert queue.deployed_commit == second


@pytest.mark.parametrize(
    ("in_helm", "newer", "expected"),
    [
        ({"ks": "d1"}, {"ks": "d2", "gl": "g"}, {"ks"}),  # the newer commit changes it: end its wait
        ({"ks": "d1"}, {"ks": "d1", "gl": "g2"}, set()),  # changes something else only: let it finish
        ({"ks": "d1"}, {"gl": "g"}, set()),  # dropped from the newer commit: let it finish
        ({}, {"ks": "d2"}, set()),  # nothing waits in helm (e.g. a bootstrap Job runs): never interrupted
        ({"ks": "d1", "gl": "g1"}, {"ks": "d2", "gl": "g2"}, {"ks", "gl"}),
    ],
)
def test_superseded_components(in_helm: dict[str, str], newer: dict[str, str], expected: set[str]) -> None:
    assert superseded_components(in_helm, newer) == expected
