"""Scheduled workflow checks in the service (issue 14): they run between runs and never overlap one.

The real run queue, scheduler and pipeline on the sandbox: every run writes keystone, whose gate check's Job the
sandbox makes slow, so runs take a while; `server-boot` is due every second. Whatever the interleaving, no
scheduled check's time span crosses a run's."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from deploy_manager.models.smoke import SmokeStatus
from deploy_manager.scheduler import ServiceScheduler
from deploy_manager.service import RunQueue
from deploy_manager.store.sqlite import RunStore
from tests.smokelib import CHECKS, build

pytestmark = [pytest.mark.helm, pytest.mark.kubesim_only("slows the gate check's Jobs through /_sandbox/")]


def spans_overlap(a: tuple[str, str], b: tuple[str, str]) -> bool:
    return a[0] < b[1] and b[0] < a[1]  # ISO 8601 UTC strings of one format compare as times


@pytest.mark.timeout(240)
def test_scheduled_checks_run_between_runs_and_never_overlap_one(tmp_path: Path, sandbox: Any, helm_bin: str) -> None:
    checks = [dict(c) for c in CHECKS]
    checks[2]["schedule"] = 1
    env = build(tmp_path, sandbox, helm_bin, checks)
    env.sandbox.inject_fault(type="slow", kind="Job", namespace=env.namespace, name="smoke-token-issue-*", seconds=1)
    store = RunStore.in_dir(env.state)
    queue = RunQueue(cluster="dev", branch="main", pipeline=env.pipeline(store=store), store=store, source=env.source())
    scheduler = ServiceScheduler(queue, poll_interval=0, smoke_interval=0.1)
    queue.start()
    scheduler.start()
    try:
        assert queue.wait_idle(90)  # the start-up run deploys the head
        for i in range(3):
            env.change("keystone", f"keystone {i}")
            queue.trigger("test")
            time.sleep(0.3)  # let a scheduled check start in between, now and then
            assert queue.wait_idle(90)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(store.smoke_history("dev", "server-boot", limit=100)) < 4:
            time.sleep(0.2)
    finally:
        scheduler.shutdown()
        queue.stop()
    runs = [r for r in store.list_runs(cluster="dev") if r.started_at and r.finished_at]
    assert len(runs) >= 4 and {r.status.value for r in runs} == {"succeeded"}
    scheduled = [r for r in store.smoke_history("dev", "server-boot", limit=100) if r.run_id is None]
    assert len(scheduled) >= 2 and {r.status for r in scheduled} == {SmokeStatus.passed}
    for check in scheduled:
        assert check.started_at and check.finished_at
        for run in runs:
            assert not spans_overlap((check.started_at, check.finished_at), (run.started_at, run.finished_at)), (
                check,
                run,
            )


def test_no_scheduled_check_starts_while_a_run_is_running(tmp_path: Path, sandbox: Any, helm_bin: str) -> None:
    """The guard itself: with a run in progress the scheduled tick runs nothing; afterwards it runs the due ones."""
    checks = [dict(c) for c in CHECKS]
    checks[2]["schedule"] = 1
    env = build(tmp_path, sandbox, helm_bin, checks)
    store = RunStore.in_dir(env.state)
    gate = threading.Event()
    pipeline = env.pipeline(store=store)
    real_run = pipeline.run

    def held_run(*args: Any, **kwargs: Any) -> Any:
        gate.wait(30)
        return real_run(*args, **kwargs)

    pipeline.run = held_run  # type: ignore[method-assign]
    queue = RunQueue(cluster="dev", branch="main", pipeline=pipeline, store=store, source=env.source())
    queue.start()
    try:
        deadline = time.monotonic() + 10
        while queue.running_run_id is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert queue.running_run_id is not None
        queue._deployed = env.source().resolve("HEAD")  # as if an earlier run deployed it
        assert queue.run_scheduled_checks() == []
        gate.set()
        assert queue.wait_idle(60)
        results = queue.run_scheduled_checks()
        assert [(r.name, r.status) for r in results] == [("server-boot", SmokeStatus.passed)]
        assert queue.run_scheduled_checks() == []  # not due again for a second
    finally:
        gate.set()
        queue.stop()
