"""Helpers for the service tests: a real uvicorn server on a free loopback port, signed webhook requests,
and `StandInPipeline` — a stand-in for `Pipeline` *in unit tests only* (the app wires the real one), which
records the commits it is asked to apply on the real `RunStore` and can be held open to simulate a long run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from deploy_manager.config import Settings
from deploy_manager.lease import LeaseConflict, LeaseRecord
from deploy_manager.models.plan import Action, ActionKind, Plan, Reason
from deploy_manager.models.run import ReleaseStatus, RunRecord, RunStatus, StepRecord, StepStatus
from deploy_manager.run import RunOutcome
from deploy_manager.store.sqlite import RunStore

WEBHOOK_SECRET = "test-webhook-secret-0123"
JENKINS_TOKEN = "test-jenkins-token-0123"
READ_TOKEN = "test-read-token-0123"
WRITE_TOKEN = "test-write-token-0123"


# The service's settings every service test shares: no polling or observing of its own (tests trigger), and the
# test secrets.
TEST_SERVICE: dict[str, Any] = {
    "poll_interval_seconds": 0,
    "observe_interval_seconds": 0,
    "github_webhook_secret": WEBHOOK_SECRET,
    "jenkins_token": JENKINS_TOKEN,
    "read_tokens": READ_TOKEN,
    "write_tokens": WRITE_TOKEN,
}


def sandbox_settings(repo: Path, state_dir: Path, kubeconfig: Path, helm_bin: str, **values: Any) -> Settings:
    """Settings of the real service on the sandbox: the repo at `repo`, TEST_SERVICE, its lease in `default`;
    `values` add to or replace these."""
    base: dict[str, Any] = {
        "repo_url": f"file://{repo}",
        "cluster": "dev",
        "state_dir": state_dir,
        "kubeconfig": kubeconfig,
        "helm_bin": helm_bin,
        **TEST_SERVICE,
        "lease_namespace": "default",
        "shutdown_grace_seconds": 60,
    }
    return Settings(**(base | values))


class LiveServer:
    """uvicorn serving `app` on 127.0.0.1:<free port> in a thread, lifespan included."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.url = ""

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def push_payload(commit: str, ref: str = "refs/heads/main", **extra: Any) -> bytes:
    return json.dumps({"ref": ref, "after": commit, "before": "1" * 40, "deleted": False, **extra}).encode()


def github_headers(body: bytes, event: str = "push", secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),  # unique per delivery, as GitHub sends it
        "X-Hub-Signature-256": sign(body, secret),
    }


class StandInPipeline:
    """Stands in for `Pipeline` in unit tests: resolves the revision with the real source, records the run on
    the real store, and optionally waits on `gate` (a long helm run). Tracks concurrency across instances via
    a shared `Concurrency`."""

    def __init__(
        self,
        store: RunStore,
        *,
        gate: threading.Event | None = None,
        concurrency: Concurrency | None = None,
        fail: bool = False,
        releases: Callable[[str], list[ReleaseStatus]] | None = None,
    ) -> None:
        self.store = store
        self.gate = gate
        self.concurrency = concurrency or Concurrency()
        self.fail = fail
        self.releases = releases
        self.applied: list[tuple[str, str]] = []  # (trigger, commit)
        self.started = threading.Event()

    def apply(
        self, source: Any, cluster: str, rev: str, *, trigger: str, run_id: int | None = None, cancel: Any = None
    ) -> RunRecord:
        assert run_id is not None
        commit = source.resolve(rev)
        self.store.start_run(run_id, commit=commit)
        self.applied.append((trigger, commit))
        with self.concurrency:
            self.started.set()
            if self.gate is not None:
                assert self.gate.wait(60), "test gate never opened"
        if self.releases is not None:
            # Like the real pipeline: an upgrade step per release, then the refreshed release records.
            for rel in self.releases(commit):
                step = StepRecord(rel.component, rel.release, rel.namespace, "upgrade", StepStatus.succeeded)
                self.store.add_step(run_id, step)
            self.store.replace_releases(cluster, self.releases(commit))
        self.store.finish_run(run_id, RunStatus.failed if self.fail else RunStatus.succeeded, error="")
        record = self.store.get_run(run_id)
        assert record is not None
        return record

    def run(
        self, source: Any, cluster: str, rev: str, *, trigger: str, run_id: int | None = None, cancel: Any = None
    ) -> RunOutcome:
        """Like the real pipeline's: the run's record and the releases after it (the caller stores them)."""
        record = self.apply(source, cluster, rev, trigger=trigger, run_id=run_id)
        return RunOutcome(record, self.store.list_releases(cluster))

    def observe(self, cluster: str, source: Any, rev: str) -> list[ReleaseStatus]:
        return self.store.list_releases(cluster)

    def plan(self, source: Any, cluster: str, rev: str) -> Plan:
        """One stand-in component, in sync with the last commit applied, else to be upgraded."""
        commit = source.resolve(rev)
        in_sync = bool(self.applied) and self.applied[-1][1] == commit
        kind = ActionKind.none if in_sync else ActionKind.upgrade
        reasons = () if in_sync else (Reason("values_changed", "values changed: conf.app", ("conf.app",)),)
        return Plan(cluster=cluster, commit=commit, actions=(Action("app", "app", "default", kind, reasons),))


class Concurrency:
    """Counts how many holders are inside at once (never more than one run per cluster)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.active = 0
        self.max_active = 0

    def __enter__(self) -> None:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.active -= 1


def wait_for(predicate: Callable[[], Any], timeout: float = 20, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir(exist_ok=True)
    return path


class MemoryLeaseBackend:
    """One Lease with the API server's optimistic concurrency: every write checks the resourceVersion read
    (409 on a stale one). For lock-logic tests; the Kubernetes backend runs against the sandbox."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.record: LeaseRecord | None = None
        self._version = 0

    def get(self) -> LeaseRecord | None:
        with self._lock:
            return self.record

    def _store(self, record: LeaseRecord) -> LeaseRecord:
        self._version += 1
        self.record = dataclasses.replace(record, resource_version=str(self._version))
        return self.record

    def create(self, record: LeaseRecord) -> LeaseRecord:
        with self._lock:
            if self.record is not None:
                raise LeaseConflict("exists")
            return self._store(record)

    def update(self, record: LeaseRecord) -> LeaseRecord:
        with self._lock:
            if self.record is None or record.resource_version != self.record.resource_version:
                raise LeaseConflict("stale resourceVersion")
            return self._store(record)
