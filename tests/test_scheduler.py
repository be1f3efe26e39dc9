"""APScheduler jobs: polling picks up a new commit without any webhook; 0 disables; failures are retried."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy_manager.scheduler import ServiceScheduler
from deploy_manager.service import RunQueue
from deploy_manager.source.git import GitSource
from deploy_manager.store.sqlite import RunStore
from tests.corelib import commit, readme_repo, write
from tests.servicelib import StandInPipeline, wait_for


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return readme_repo(tmp_path / "remote")


@pytest.fixture
def queue(repo: Path, tmp_path: Path) -> Iterator[RunQueue]:
    store = RunStore(tmp_path / "state" / "deploy-manager.db")
    q = RunQueue(
        cluster="dev",
        branch="main",
        pipeline=StandInPipeline(store),
        store=store,
        source=GitSource(f"file://{repo}", mirror_dir=tmp_path / "mirrors"),
        grace_seconds=10,
    )
    q.start()
    assert q.wait_idle(20)
    yield q
    q.stop()
    store.close()


def test_a_poll_picks_up_a_new_commit_without_a_webhook(repo: Path, queue: RunQueue) -> None:
    scheduler = ServiceScheduler(queue, poll_interval=0.2, poll_jitter=0.05)
    scheduler.start()
    try:
        write(repo / "README", "v1\n")
        sha = commit(repo, "v1")
        wait_for(lambda: queue.deployed_commit == sha)
        run = queue.store.list_runs(cluster="dev")[0]
        assert run.trigger == "poll" and run.commit == sha
        # Further polls of an unchanged branch add no run.
        runs = len(queue.store.list_runs(cluster="dev"))
        wait_for(lambda: queue._last_polled == sha)
        assert len(queue.store.list_runs(cluster="dev")) == runs
    finally:
        scheduler.shutdown()


def test_zero_intervals_schedule_nothing(queue: RunQueue) -> None:
    assert ServiceScheduler(queue, poll_interval=0, observe_interval=0).job_ids == []
    assert sorted(ServiceScheduler(queue, poll_interval=60, observe_interval=300).job_ids) == ["observe", "poll"]


def test_a_failing_poll_is_logged_and_retried(repo: Path, queue: RunQueue, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    (repo / ".git").rename(tmp_path / "away.git")
    scheduler = ServiceScheduler(queue, poll_interval=0.2)
    scheduler.start()
    try:
        wait_for(lambda: "poll failed" in caplog.text)
        assert queue.last_fetch_error
        (tmp_path / "away.git").rename(repo / ".git")
        write(repo / "README", "v1\n")
        sha = commit(repo, "v1")
        wait_for(lambda: queue.deployed_commit == sha)
        assert queue.last_fetch_error is None
    finally:
        scheduler.shutdown()


def test_observe_refreshes_the_releases(queue: RunQueue) -> None:
    calls: list[str] = []
    original = queue.pipeline.observe

    def observe(cluster: str, source: object, rev: str) -> list:
        calls.append(rev)
        return original(cluster, source, rev)

    queue.pipeline.observe = observe  # type: ignore[method-assign]
    scheduler = ServiceScheduler(queue, poll_interval=0, observe_interval=0.2)
    scheduler.start()
    try:
        wait_for(lambda: len(calls) >= 2)
        assert calls[0] == queue.deployed_commit
    finally:
        scheduler.shutdown()


def test_the_drift_job_follows_its_interval(queue: RunQueue) -> None:
    checks: list[int] = []
    with_drift = ServiceScheduler(queue, poll_interval=0, drift_interval=300, drift_check=lambda: checks.append(1))
    assert with_drift.job_ids == ["drift"]
    assert ServiceScheduler(queue, poll_interval=0, drift_interval=0, drift_check=lambda: None).job_ids == []
