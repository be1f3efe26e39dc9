"""Where operators look, end to end: the real Pipeline, real helm against the sandbox, a real git remote, the
service on uvicorn (loopback), GitHub's statuses API and a notification receiver as strict local servers, and
headless Chromium (Debian's `chromium`) reading the pages a person would open.

A keystone rollout that never becomes ready (the sandbox's `kubesim.io/never-ready`) holds helm in `--wait`:
meanwhile the run page shows keystone's `helm upgrade` in progress; after helm's timeout the upgrade fails and
is rolled back, the run is `failed`, its commit gets a `failure` status naming keystone, the notification lists
it, and the run page (reached by the link on `/`) highlights the failed step.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deploy_manager.notify import RunNotifier
from tests.api.status_browser import CHROMIUM, render
from tests.api.test_integration import Remote, Running, hangable_keystone, push_keystone, remote, start  # noqa: F401
from tests.notifylib import TOKEN, GitHubStatusServer, WebhookReceiver
from tests.servicelib import READ_TOKEN, wait_for

pytestmark = [pytest.mark.helm, pytest.mark.slow]
PUBLIC = "https://deploy.example.com"
HELM_TIMEOUT = 15


def _browse(svc: Running, path: str, profile: Path) -> str:
    host = svc.server.url.removeprefix("http://")
    result = render(f"http://ops:{READ_TOKEN}@{host}{path}", profile, "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_a_failed_upgrade_is_shown_live_then_reported_failed_everywhere(
    start: Callable[..., Running],  # noqa: F811
    remote: Remote,  # noqa: F811
    github: GitHubStatusServer,
    hook: WebhookReceiver,
    sandbox_module: Any,
    tmp_path: Path,
) -> None:
    hangable_keystone(remote, HELM_TIMEOUT)
    svc = start(
        github_api_url=github.api_url,
        github_token=TOKEN,
        github_repository="cloud/deploy",
        public_url=PUBLIC,
        notify_url=hook.hook_url,
    )
    assert svc.queue.wait_idle(120)
    sha, run_id = push_keystone(svc, remote, 31, broken=True)
    wait_for(lambda: svc.queue.progress().get("keystone") == "helm upgrade", timeout=60)

    # While helm waits: the run page and the status page show keystone being written, and refresh themselves.
    live = _browse(svc, f"/runs/{run_id}", tmp_path / "p1")
    assert f"Run {run_id}: running" in live and 'id="in-progress"' in live
    assert re.search(r'<tr class="running"><td>keystone</td><td>helm upgrade</td></tr>', live), live
    assert '<meta http-equiv="refresh" content="2">' in live
    front = _browse(svc, "/", tmp_path / "p2")
    assert f"Run {run_id} in progress" in front and "<td>helm upgrade</td>" in front
    assert svc.queue.running_run_id == run_id  # all of the above was seen during the run

    assert svc.queue.wait_idle(HELM_TIMEOUT + 90)
    notifier = svc.server.app.state.notifier
    assert isinstance(notifier, RunNotifier) and notifier.sender.wait_idle(30)
    link = f"{PUBLIC}/runs/{run_id}"
    assert [(s["state"], s["context"], s["target_url"]) for s in github.statuses(sha)] == [
        ("pending", "deploy-manager/dev", link),
        ("failure", "deploy-manager/dev", link),
    ]
    assert github.statuses(sha)[-1]["description"] == "keystone upgrade failed (rolled back)"
    body = next(b for b in hook.bodies() if b["run_id"] == run_id)
    assert body["status"] == "failed" and body["commit"] == sha and body["link"] == link
    assert body["failed_components"] == ["keystone"] and body["failed_checks"] == []
    assert "keystone upgrade failed (rolled back)" in body["text"] and f"<{link}|run {run_id}>" in body["text"]

    # A person follows the link on / to the run and finds the failed step highlighted.
    front = _browse(svc, "/", tmp_path / "p3")
    hrefs = re.findall(r'<a href="(/runs/\d+)">(\d+)</a>', front)
    href = next(h for h, text in hrefs if text == str(run_id))
    page = _browse(svc, href, tmp_path / "p4")
    assert f"Run {run_id}: failed" in page and "In progress" not in page
    failed = re.search(r'<tr class="failed" id="failed-step"><td>keystone</td><td>upgrade</td>', page)
    assert failed, page
    assert re.search(r'<tr class="failed"><td>keystone</td><td>rollback</td>', page)
    shot = tmp_path / "run.png"
    host = svc.server.url.removeprefix("http://")
    result = render(f"http://ops:{READ_TOKEN}@{host}{href}", tmp_path / "p5", f"--screenshot={shot}")
    assert result.returncode == 0 and shot.stat().st_size > 10_000
