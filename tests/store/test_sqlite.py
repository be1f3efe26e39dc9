"""RunStore on a real SQLite file: migrations, runs and steps, releases, interrupted runs, threads."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from deploy_manager.models.plan import Reason
from deploy_manager.models.run import ReleaseStatus, RunStatus, StepRecord, StepStatus
from deploy_manager.store.sqlite import MIGRATIONS, RunStore


def step(component: str, status: StepStatus = StepStatus.succeeded) -> StepRecord:
    return StepRecord(
        component=component,
        release=component,
        namespace="os",
        action="upgrade",
        status=status,
        reasons=(Reason("values_changed", "values changed: a.b", ("a.b",)),),
        helm_revision=3,
        duration=1.5,
        exit_code=0,
        output_tail="ok",
    )


def test_schema_version_wal_and_reopen(tmp_path: Path) -> None:
    db = tmp_path / "state" / "deploy-manager.db"
    store = RunStore(db)
    assert store.schema_version == len(MIGRATIONS)
    run = store.create_run(cluster="dev", commit="abc", trigger="cli")
    store.close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    again = RunStore(db)
    assert again.get_run(run) is not None and again.schema_version == len(MIGRATIONS)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer than this deploy-manager"):
        RunStore(db)


def test_run_lifecycle_with_steps(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "db")
    run_id = store.create_run(cluster="dev", commit=None, trigger="webhook")
    assert store.get_run(run_id).status is RunStatus.queued  # type: ignore[union-attr]
    store.start_run(run_id, commit="f" * 40)
    store.add_step(run_id, step("keystone"))
    store.add_step(run_id, step("glance", StepStatus.failed))
    store.finish_run(run_id, RunStatus.failed, error="failed: glance")
    run = store.get_run(run_id)
    assert run is not None
    assert (run.status, run.commit, run.error) == (RunStatus.failed, "f" * 40, "failed: glance")
    assert [s.component for s in run.steps] == ["keystone", "glance"]
    assert run.steps[0].reasons[0].paths == ("a.b",) and run.steps[1].status is StepStatus.failed
    assert run.started_at and run.finished_at
    assert store.get_run(9999) is None


def test_a_run_that_fails_before_it_starts_still_has_a_start_time(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "db")
    run_id = store.create_run(cluster="dev", commit=None, trigger="github")
    store.finish_run(run_id, RunStatus.failed, error="cannot fetch")
    run = store.get_run(run_id)
    assert run is not None and run.started_at is not None and run.started_at == run.finished_at


def test_list_runs_filters_and_orders(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "db")
    ids = [store.create_run(cluster=c, commit=None, trigger="poll") for c in ("a", "b", "a")]
    assert [r.id for r in store.list_runs(cluster="a")] == [ids[2], ids[0]]
    assert [r.id for r in store.list_runs(limit=2)] == [ids[2], ids[1]]


def test_mark_interrupted(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "db")
    a = store.create_run(cluster="a", commit=None, trigger="poll", status="running")
    b = store.create_run(cluster="a", commit=None, trigger="poll")
    c = store.create_run(cluster="a", commit=None, trigger="poll")
    store.finish_run(c, RunStatus.succeeded)
    assert store.mark_interrupted() == 2
    assert {store.get_run(i).status for i in (a, b)} == {RunStatus.interrupted}  # type: ignore[union-attr]
    assert store.get_run(c).status is RunStatus.succeeded  # type: ignore[union-attr]


def test_replace_releases(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "db")
    rel = ReleaseStatus("keystone", "keystone", "os", "keystone", "0.1.0", 2, "deployed", "c" * 40, "d" * 40, "in-sync")
    store.replace_releases("dev", [rel])
    store.replace_releases("prod", [rel])
    assert store.list_releases("dev") == [rel]
    store.replace_releases("dev", [])
    assert store.list_releases("dev") == [] and store.list_releases("prod") == [rel]


def test_release_rows_keep_the_deployed_commit(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "db")
    rel = ReleaseStatus(
        "keystone", "keystone", "os", "keystone", "0.1.0", 2, "deployed", "e" * 40, "d" * 40, "in-sync",
        deployed_commit="c" * 40,
    )
    store.replace_releases("dev", [rel])
    assert store.list_releases("dev") == [rel]


def test_migration_from_schema_1_keeps_the_label_commit_as_deployed_commit(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    conn.execute(
        "INSERT INTO releases (cluster, component, release, namespace, chart, chart_version, revision, status,"
        " commit_sha, digest, state, updated) VALUES ('dev','ks','ks','os','ks','0.1.0',3,'deployed',?,?,'in-sync','')",
        ("c" * 40, "d" * 40),
    )
    conn.commit()
    conn.close()
    store = RunStore(db)
    assert store.schema_version == len(MIGRATIONS)
    (rel,) = store.list_releases("dev")
    assert rel.commit == "c" * 40 and rel.deployed_commit == "c" * 40 and rel.revision == 3


def test_concurrent_writers_from_threads(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "db")
    run_id = store.create_run(cluster="dev", commit=None, trigger="cli")
    threads = [
        threading.Thread(target=lambda i=i: [store.add_step(run_id, step(f"c{i}-{j}")) for j in range(20)])
        for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.get_run(run_id).steps) == 80  # type: ignore[union-attr]


def test_mark_interrupted_of_one_cluster_leaves_the_others_and_queued_runs(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "db.sqlite")
    dead = store.create_run(cluster="a", commit=None, trigger="cli", status="running")
    queued = store.create_run(cluster="a", commit=None, trigger="poll", status="queued")
    other = store.create_run(cluster="b", commit=None, trigger="cli", status="running")
    assert store.mark_interrupted("a") == 1
    status = {r.id: r.status.value for r in store.list_runs()}
    assert status == {dead: "interrupted", queued: "queued", other: "running"}
