"""The run page as a person sees it: headless Chromium (Debian's) over loopback, with the credentials `/`
accepts (the read token as the Basic password). During a run the page shows what each component is doing; a
failing check is highlighted; the links on `/` lead to the run.

The pipeline here is the HTTP tests' stand-in, which reports a component as inside its helm write the way the
real step kinds do (`RunCancel`); tests/api/test_notify_integration.py shows the same with real helm. The check
results are attached to the stored record the way the smoke-check work records them (`checks`)."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy_manager.api import create_app
from deploy_manager.config import Settings
from deploy_manager.models.run import RunRecord
from deploy_manager.run import RunOutcome
from deploy_manager.store.sqlite import RunStore
from tests.api.status_browser import CHROMIUM, render
from tests.servicelib import READ_TOKEN, LiveServer, StandInPipeline, wait_for

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")


class WritingPipeline(StandInPipeline):
    """Holds the run open inside keystone's helm write (as `reconcile/upgrade.py` marks it)."""

    def run(self, source: Any, cluster: str, rev: str, *, trigger: str, run_id: int | None = None,
            cancel: Any = None) -> RunOutcome:
        context = cancel.activity("keystone", "helm upgrade") if cancel is not None else contextlib.nullcontext()
        with context:
            record = self.apply(source, cluster, rev, trigger=trigger, run_id=run_id)
        return RunOutcome(record, self.store.list_releases(cluster))


class StoreWithChecks(RunStore):
    """The record as the smoke-check work leaves it: check results on the run."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.checks: dict[int, tuple[dict[str, Any], ...]] = {}

    def get_run(self, run_id: int) -> RunRecord | None:
        run = super().get_run(run_id)
        if run is not None and run_id in self.checks:
            object.__setattr__(run, "checks", self.checks[run_id])
        return run


@pytest.fixture
def served(tmp_path: Path, values_repo: Path) -> Iterator[tuple[LiveServer, StoreWithChecks, threading.Event]]:
    settings = Settings(
        repo_url=f"file://{values_repo}", cluster="dev", state_dir=tmp_path / "state", poll_interval_seconds=0,
        observe_interval_seconds=0, read_tokens=READ_TOKEN, trigger_quiet_seconds=0,
    )
    store = StoreWithChecks(settings.db_path)
    gate = threading.Event()
    app = create_app(settings, pipeline=WritingPipeline(store, gate=gate), store=store, lease=None,
                     kube_ping=lambda: None)
    try:
        with LiveServer(app) as server:
            try:
                yield server, store, gate
            finally:
                gate.set()
    finally:
        store.close()


def _browse(server: LiveServer, path: str, profile: Path, *extra: str) -> str:
    host = server.url.removeprefix("http://")
    result = render(f"http://ops:{READ_TOKEN}@{host}{path}", profile, *(extra or ("--dump-dom",)))
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_during_a_run_the_pages_show_what_is_being_written_and_link_to_the_run(
    served: tuple[LiveServer, StoreWithChecks, threading.Event], tmp_path: Path
) -> None:
    server, store, gate = served
    queue = server.app.state.dm.queue
    run_id = wait_for(lambda: queue.running_run_id)
    wait_for(lambda: queue.progress() == {"keystone": "helm upgrade"})
    front = _browse(server, "/", tmp_path / "p1")
    assert f"Run {run_id} in progress" in front
    href = re.search(rf'<a href="(/runs/{run_id})">details of this run</a>', front)
    assert href, front
    page = _browse(server, href.group(1), tmp_path / "p2")
    assert f"<h1>Run {run_id}: running</h1>" in page
    assert '<tr class="running"><td>keystone</td><td>helm upgrade</td></tr>' in page
    assert queue.running_run_id == run_id  # seen during the run
    gate.set()
    assert queue.wait_idle(20)
    done = _browse(server, href.group(1), tmp_path / "p3")
    assert f"<h1>Run {run_id}: succeeded</h1>" in done and "In progress" not in done


def test_a_failing_check_is_highlighted_with_its_log_on_click(
    served: tuple[LiveServer, StoreWithChecks, threading.Event], tmp_path: Path
) -> None:
    server, store, gate = served
    gate.set()
    queue = server.app.state.dm.queue
    assert queue.wait_idle(20)
    run_id = store.list_runs(cluster="dev", limit=1)[0].id
    store.checks[run_id] = (
        {"name": "token-issue", "component": "keystone", "status": "passed", "duration": 0.9, "sla": 5,
         "log_tail": "token issued"},
        {"name": "server-boot", "component": "nova", "status": "failed", "duration": 61.2,
         "log_tail": "ERROR: server test-vm went to ERROR state"},
    )
    front = _browse(server, "/", tmp_path / "p1")
    assert f'<a href="/runs/{run_id}">{run_id}</a>' in front  # the runs list links the run
    # The status page shows the newest finished run's checks too, the failing one highlighted.
    assert f'<h2>Checks (run <a href="/runs/{run_id}">{run_id}</a>)</h2>' in front
    assert re.search(r'<tr class="failed"><td>server-boot</td><td>nova</td>', front), front
    page = _browse(server, f"/runs/{run_id}", tmp_path / "p2")
    assert re.search(r'<tr class="failed"><td>server-boot</td><td>nova</td><td class="status-failed">failed</td>',
                     page), page
    assert re.search(r"<tr><td>token-issue</td><td>keystone</td>", page)
    assert "<details><summary>log</summary><pre>ERROR: server test-vm went to ERROR state</pre></details>" in page
    shot = tmp_path / "checks.png"
    _browse(server, f"/runs/{run_id}", tmp_path / "p3", f"--screenshot={shot}")
    assert shot.stat().st_size > 10_000
