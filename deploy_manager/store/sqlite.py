"""`RunStore`: SQLite with WAL, one writer lock, and a `PRAGMA user_version` schema migration.

The store is a record of what deploy-manager did; the truth about what is deployed lives in the
cluster's release records. Losing this file loses history, never correctness.
Thread-safe: one connection shared behind a lock (runs write a handful of rows; contention is nil).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deploy_manager.clock import now
from deploy_manager.models.plan import Reason
from deploy_manager.models.run import ReleaseStatus, RunRecord, RunStatus, StepRecord, StepStatus
from deploy_manager.models.smoke import SmokeResult, SmokeStatus
from deploy_manager.redaction import Redactor

DB_NAME = "deploy-manager.db"

# Each entry migrates from user_version == index to index + 1. Append only.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        cluster TEXT NOT NULL,
        commit_sha TEXT,
        trigger TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        error TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX runs_cluster ON runs (cluster, id);
    CREATE TABLE steps (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        component TEXT NOT NULL,
        release TEXT NOT NULL,
        namespace TEXT NOT NULL,
        action TEXT NOT NULL,
        status TEXT NOT NULL,
        reasons TEXT NOT NULL DEFAULT '[]',
        helm_revision INTEGER,
        duration REAL NOT NULL DEFAULT 0,
        exit_code INTEGER,
        output_tail TEXT NOT NULL DEFAULT '',
        error TEXT NOT NULL DEFAULT '',
        started_at TEXT,
        finished_at TEXT
    );
    CREATE INDEX steps_run ON steps (run_id);
    CREATE TABLE releases (
        cluster TEXT NOT NULL,
        component TEXT NOT NULL,
        release TEXT NOT NULL,
        namespace TEXT NOT NULL,
        chart TEXT NOT NULL,
        chart_version TEXT NOT NULL,
        revision INTEGER NOT NULL,
        status TEXT NOT NULL,
        commit_sha TEXT,
        digest TEXT,
        state TEXT NOT NULL DEFAULT '',
        updated TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (cluster, component)
    );
    """,
    # 2: `commit_sha` becomes the commit a release is at (in sync at a newer commit included); the commit helm
    # recorded when it last wrote the release moves to `deployed_commit` (what `commit_sha` held so far).
    """
    ALTER TABLE releases ADD COLUMN deployed_commit TEXT;
    UPDATE releases SET deployed_commit = commit_sha;
    """,
    # 3: workflow checks (issue 14): every finished check, from runs, `deploy-manager smoke` and the schedule.
    """
    CREATE TABLE smoke_results (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        cluster TEXT NOT NULL,
        name TEXT NOT NULL,
        component TEXT NOT NULL,
        status TEXT NOT NULL,
        duration REAL NOT NULL DEFAULT 0,
        started_at TEXT,
        finished_at TEXT,
        run_id INTEGER,
        log_tail TEXT NOT NULL DEFAULT '',
        error TEXT NOT NULL DEFAULT '',
        job TEXT NOT NULL DEFAULT '',
        sla REAL
    );
    CREATE INDEX smoke_results_check ON smoke_results (cluster, name, id);
    """,
]
SMOKE_HISTORY = 100  # results kept per check


class RunStore:
    """`redact`: masks the free text of every record before it is written (run errors, step errors and output
    tails), so the database never holds a configured secret whatever a caller passed in."""

    def __init__(self, path: Path, *, redact: Redactor | None = None) -> None:
        self.path = path
        self.redact = redact or Redactor()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: stays consistent on a crash, no fsync per step
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._migrate()

    @classmethod
    def in_dir(cls, state_dir: Path, *, redact: Redactor | None = None) -> RunStore:
        return cls(state_dir / DB_NAME, redact=redact)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._tx() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise RuntimeError(f"{self.path}: schema version {version} is newer than this deploy-manager")
            for i in range(version, len(MIGRATIONS)):
                for stmt in MIGRATIONS[i].split(";"):
                    if stmt.strip():
                        db.execute(stmt)
                db.execute(f"PRAGMA user_version = {i + 1}")

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    # -- runs -----------------------------------------------------------------------------------------
    def create_run(self, *, cluster: str, commit: str | None, trigger: str, status: str = "queued") -> int:
        RunStatus(status)
        ts = now()
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO runs (cluster, commit_sha, trigger, status, created_at, started_at) VALUES (?,?,?,?,?,?)",
                (cluster, commit, trigger, status, ts, ts if status == RunStatus.running else None),
            )
            return int(cur.lastrowid or 0)

    def start_run(self, run_id: int, *, commit: str | None) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET status=?, started_at=COALESCE(started_at, ?), commit_sha=COALESCE(?, commit_sha)"
                " WHERE id=?",
                (RunStatus.running.value, now(), commit, run_id),
            )

    def finish_run(self, run_id: int, status: RunStatus, *, error: str = "", commit: str | None = None) -> None:
        """A finished run always has `started_at` (a run that failed before it started: its finish time)."""
        ts = now()
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET status=?, started_at=COALESCE(started_at, ?), finished_at=?, error=?,"
                " commit_sha=COALESCE(?, commit_sha) WHERE id=?",
                (status.value, ts, ts, self.redact.text(error), commit, run_id),
            )

    def add_step(self, run_id: int, step: StepRecord) -> int:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO steps (run_id, component, release, namespace, action, status, reasons, helm_revision,"
                " duration, exit_code, output_tail, error, started_at, finished_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    step.component,
                    step.release,
                    step.namespace,
                    step.action,
                    step.status.value,
                    json.dumps([r.to_dict() for r in step.reasons]),
                    step.helm_revision,
                    step.duration,
                    step.exit_code,
                    self.redact.text(step.output_tail),
                    self.redact.text(step.error),
                    step.started_at,
                    step.finished_at,
                ),
            )
            return int(cur.lastrowid or 0)

    def mark_interrupted(self, cluster: str | None = None) -> int:
        """Runs left `running` (or `queued`) by a process that died: mark them interrupted. With `cluster`: only
        its `running` ones (`deploy-manager apply` holding that cluster's Lease knows no run of it is alive; a
        queued run may be a service's, waiting for that Lease)."""
        if cluster is None:
            where, args = "status IN (?, ?)", (RunStatus.running.value, RunStatus.queued.value)
        else:
            where, args = "status=? AND cluster=?", (RunStatus.running.value, cluster)
        with self._tx() as db:
            cur = db.execute(
                f"UPDATE runs SET status=?, finished_at=?, error=? WHERE {where}",
                (RunStatus.interrupted.value, now(), "interrupted: the process running it stopped", *args),
            )
            return cur.rowcount

    def list_runs(self, *, cluster: str | None = None, limit: int = 50) -> list[RunRecord]:
        with self._lock:
            if cluster is None:
                rows = self._db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT * FROM runs WHERE cluster=? ORDER BY id DESC LIMIT ?", (cluster, limit)
                ).fetchall()
            steps = self._steps([r["id"] for r in rows])
        return [_run(r, steps.get(r["id"], [])) for r in rows]

    def get_run(self, run_id: int) -> RunRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
            if row is None:
                return None
            steps = self._steps([run_id])
        return _run(row, steps.get(run_id, []))

    def _steps(self, run_ids: list[int]) -> dict[int, list[StepRecord]]:
        if not run_ids:
            return {}
        marks = ",".join("?" * len(run_ids))
        rows = self._db.execute(f"SELECT * FROM steps WHERE run_id IN ({marks}) ORDER BY id", run_ids).fetchall()
        out: dict[int, list[StepRecord]] = {}
        for r in rows:
            out.setdefault(r["run_id"], []).append(_step(r))
        return out

    # -- releases -------------------------------------------------------------------------------------
    def replace_releases(self, cluster: str, releases: list[ReleaseStatus]) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM releases WHERE cluster=?", (cluster,))
            db.executemany(
                "INSERT INTO releases (cluster, component, release, namespace, chart, chart_version, revision, status,"
                " commit_sha, digest, state, updated, deployed_commit) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        cluster,
                        r.component,
                        r.release,
                        r.namespace,
                        r.chart,
                        r.chart_version,
                        r.revision,
                        r.status,
                        r.commit,
                        r.digest,
                        r.state,
                        r.updated,
                        r.deployed_commit,
                    )
                    for r in releases
                ],
            )

    def list_releases(self, cluster: str) -> list[ReleaseStatus]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM releases WHERE cluster=? ORDER BY component", (cluster,)).fetchall()
        return [
            ReleaseStatus(
                component=r["component"],
                release=r["release"],
                namespace=r["namespace"],
                chart=r["chart"],
                chart_version=r["chart_version"],
                revision=r["revision"],
                status=r["status"],
                commit=r["commit_sha"],
                digest=r["digest"],
                state=r["state"],
                updated=r["updated"],
                deployed_commit=r["deployed_commit"],
            )
            for r in rows
        ]


    # -- workflow checks (issue 14) ----------------------------------------------------------------------
    def add_smoke(self, result: SmokeResult) -> int:
        """Record one finished check (log tail and error redacted); keeps the newest SMOKE_HISTORY per check."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO smoke_results (cluster, name, component, status, duration, started_at, finished_at,"
                " run_id, log_tail, error, job, sla) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    result.cluster,
                    result.name,
                    result.component,
                    result.status.value,
                    result.duration,
                    result.started_at,
                    result.finished_at,
                    result.run_id,
                    self.redact.text(result.log_tail),
                    self.redact.text(result.error),
                    result.job,
                    result.sla,
                ),
            )
            db.execute(
                "DELETE FROM smoke_results WHERE cluster=? AND name=? AND id NOT IN"
                " (SELECT id FROM smoke_results WHERE cluster=? AND name=? ORDER BY id DESC LIMIT ?)",
                (result.cluster, result.name, result.cluster, result.name, SMOKE_HISTORY),
            )
            return int(cur.lastrowid or 0)

    def latest_smoke(self, cluster: str) -> list[SmokeResult]:
        """The newest result of each check of `cluster`, by name."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM smoke_results WHERE id IN"
                " (SELECT MAX(id) FROM smoke_results WHERE cluster=? GROUP BY name) ORDER BY name",
                (cluster,),
            ).fetchall()
        return [_smoke(r) for r in rows]

    def smoke_history(self, cluster: str, name: str, *, limit: int = 20) -> list[SmokeResult]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM smoke_results WHERE cluster=? AND name=? ORDER BY id DESC LIMIT ?",
                (cluster, name, limit),
            ).fetchall()
        return [_smoke(r) for r in rows]


def _smoke(row: sqlite3.Row) -> SmokeResult:
    return SmokeResult(
        cluster=row["cluster"],
        name=row["name"],
        component=row["component"],
        status=SmokeStatus(row["status"]),
        duration=row["duration"],
        finished_at=row["finished_at"],
        run_id=row["run_id"],
        log_tail=row["log_tail"],
        started_at=row["started_at"],
        error=row["error"],
        job=row["job"],
        sla=row["sla"],
    )


def _run(row: sqlite3.Row, steps: list[StepRecord]) -> RunRecord:
    return RunRecord(
        id=row["id"],
        cluster=row["cluster"],
        commit=row["commit_sha"],
        trigger=row["trigger"],
        status=RunStatus(row["status"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        error=row["error"],
        steps=tuple(steps),
    )


def _step(row: sqlite3.Row) -> StepRecord:
    reasons: list[dict[str, Any]] = json.loads(row["reasons"] or "[]")
    return StepRecord(
        component=row["component"],
        release=row["release"],
        namespace=row["namespace"],
        action=row["action"],
        status=StepStatus(row["status"]),
        reasons=tuple(Reason.from_dict(r) for r in reasons),
        helm_revision=row["helm_revision"],
        duration=row["duration"],
        exit_code=row["exit_code"],
        output_tail=row["output_tail"],
        error=row["error"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )
