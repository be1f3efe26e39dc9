"""Workflow check results in the store (issue 14): an additive migration, the latest per check, bounded history,
secrets redacted."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from deploy_manager.models.smoke import SmokeResult, SmokeStatus
from deploy_manager.redaction import Redactor
from deploy_manager.store.sqlite import MIGRATIONS, SMOKE_HISTORY, RunStore


def result(
    name: str, status: SmokeStatus, *, cluster: str = "dev", run_id: int | None = 1, tail: str = ""
) -> SmokeResult:
    return SmokeResult(
        cluster=cluster,
        name=name,
        component="keystone",
        status=status,
        duration=1.25,
        finished_at="2026-11-28T12:00:00+00:00",
        run_id=run_id,
        log_tail=tail,
        job=f"smoke-{name}-abc123",
        sla=5.0,
    )


def test_latest_result_per_check_of_the_cluster(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "db.sqlite")
    store.add_smoke(result("token-issue", SmokeStatus.failed))
    store.add_smoke(result("token-issue", SmokeStatus.passed, run_id=None))
    store.add_smoke(result("image-list", SmokeStatus.slow))
    store.add_smoke(result("token-issue", SmokeStatus.error, cluster="prod"))
    latest = store.latest_smoke("dev")
    assert [(r.name, r.status, r.run_id) for r in latest] == [
        ("image-list", SmokeStatus.slow, 1),
        ("token-issue", SmokeStatus.passed, None),
    ]
    assert latest[1].to_dict() | {"log_tail": ""} == {
        "name": "token-issue",
        "component": "keystone",
        "status": "passed",
        "duration": 1.25,
        "finished_at": "2026-11-28T12:00:00+00:00",
        "run_id": None,
        "log_tail": "",
        "started_at": None,
        "error": "",
        "job": "smoke-token-issue-abc123",
        "sla": 5.0,
    }
    assert [r.status for r in store.smoke_history("dev", "token-issue")] == [SmokeStatus.passed, SmokeStatus.failed]


def test_history_is_bounded_per_check(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "db.sqlite")
    for _ in range(SMOKE_HISTORY + 5):
        store.add_smoke(result("token-issue", SmokeStatus.passed))
    store.add_smoke(result("image-list", SmokeStatus.passed))
    assert len(store.smoke_history("dev", "token-issue", limit=1000)) == SMOKE_HISTORY
    assert len(store.smoke_history("dev", "image-list")) == 1


def test_log_tails_are_redacted(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "db.sqlite", redact=Redactor({"s3cr3t-admin-pw"}))
    store.add_smoke(result("token-issue", SmokeStatus.failed, tail="auth with s3cr3t-admin-pw failed"))
    assert "s3cr3t-admin-pw" not in store.latest_smoke("dev")[0].log_tail


def test_migration_from_schema_2_adds_the_table_and_keeps_the_runs(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0] + ";" + MIGRATIONS[1] + "; PRAGMA user_version = 2;")
    conn.execute("INSERT INTO runs (cluster, trigger, status, created_at) VALUES ('dev', 'cli', 'succeeded', 'x')")
    conn.commit()
    conn.close()
    store = RunStore(path)
    assert store.schema_version == len(MIGRATIONS) >= 3
    assert [r.id for r in store.list_runs(cluster="dev")] == [1]
    store.add_smoke(result("token-issue", SmokeStatus.passed))
    assert store.latest_smoke("dev")[0].name == "token-issue"
