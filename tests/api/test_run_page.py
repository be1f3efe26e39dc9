"""The HTML run page: content negotiation on /runs/{id} (the JSON API unchanged), auth as the status page,
the failed step highlighted, check results when the record has them, escaping and masking."""

from __future__ import annotations

import base64
import hashlib
import re
import types
from typing import Any

import pytest

from deploy_manager.api.run_page import HEADERS, prefers_html, render_run
from deploy_manager.models.plan import Reason
from deploy_manager.models.run import RunRecord, RunStatus, StepRecord, StepStatus
from deploy_manager.redaction import Redactor
from tests.api.conftest import Service, ServiceFactory
from tests.servicelib import READ_TOKEN, WEBHOOK_SECRET

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


def basic(token: str = READ_TOKEN) -> str:
    return "Basic " + base64.b64encode(f"ops:{token}".encode()).decode()


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (BROWSER, True),
        ("text/html", True),
        (None, False),
        ("", False),
        ("*/*", False),
        ("application/json", False),
        ("application/json, text/html", False),  # a tie keeps the API
        ("text/html;q=0.5, application/json", False),
        ("application/json;q=0.5, text/html", True),
        ("text/html;q=bad", False),
    ],
)
def test_prefers_html(accept: str | None, html: bool) -> None:
    assert prefers_html(accept) is html


def _last_run_id(svc: Service) -> int:
    with svc.server.client(READ_TOKEN) as c:
        return int(c.get("/runs", params={"limit": 1}).json()[0]["id"])


def test_runs_id_answers_json_to_the_api_and_html_to_a_browser(service: Service) -> None:
    run_id = _last_run_id(service)
    with service.server.client() as c:
        api = c.get(f"/runs/{run_id}", headers={"Authorization": f"Bearer {READ_TOKEN}"})
        assert api.headers["content-type"] == "application/json" and api.json()["id"] == run_id
        assert api.headers["vary"] == "Accept"
        # The JSON API keeps Bearer only: a Basic password is not accepted there.
        refused = c.get(f"/runs/{run_id}", headers={"Authorization": basic()})
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        page = c.get(f"/runs/{run_id}", headers={"Authorization": basic(), "Accept": BROWSER})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert f"<h1>Run {run_id}: succeeded</h1>" in page.text
        assert page.headers["content-security-policy"] == HEADERS["Content-Security-Policy"]
        assert "<script" not in page.text and "script-src" not in page.headers["content-security-policy"]
        style = re.search(r"<style>(.*?)</style>", page.text, re.S)
        assert style is not None  # the page's only style is the one its CSP allows, by hash
        digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
        assert f"style-src 'sha256-{digest}'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
        same = c.get(f"/ui/runs/{run_id}", headers={"Authorization": f"Bearer {READ_TOKEN}"})
        assert same.status_code == 200 and f"<h1>Run {run_id}: succeeded</h1>" in same.text


def test_the_page_asks_a_browser_for_basic_auth(service: Service) -> None:
    run_id = _last_run_id(service)
    with service.server.client() as c:
        for headers in ({"Accept": BROWSER}, {"Accept": BROWSER, "Authorization": basic("wrong-token")}):
            answer = c.get(f"/runs/{run_id}", headers=headers)
            assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Basic ")
            assert "succeeded" not in answer.text
        assert c.get("/ui/runs/999", headers={"Authorization": basic()}).status_code == 404
        assert c.get("/ui/runs/0", headers={"Authorization": basic()}).status_code == 422


def test_the_status_page_links_every_run_to_its_page(service: Service) -> None:
    run_id = _last_run_id(service)
    with service.server.client() as c:
        page = c.get("/", headers={"Authorization": basic()}).text
    assert f'<td><a href="/runs/{run_id}">{run_id}</a></td>' in page


def test_a_failed_step_is_highlighted_and_everything_escaped_and_masked(make_service: ServiceFactory) -> None:
    svc = make_service()
    run_id = svc.store.create_run(cluster="dev", commit=None, trigger="push")
    svc.store.start_run(run_id, commit="b" * 40)
    ok = StepRecord("rabbitmq", "rabbitmq", "openstack", "upgrade", StepStatus.succeeded, duration=1.25)
    bad = StepRecord(
        "keystone", "keystone", "openstack", "upgrade", StepStatus.failed,
        (Reason("values_changed", "values changed: conf.keystone"),),
        helm_revision=4, output_tail=f"Error: <script>alert(1)</script> token {WEBHOOK_SECRET}",
        error="UPGRADE FAILED: context deadline exceeded",
    )
    back = StepRecord("keystone", "keystone", "openstack", "rollback", StepStatus.failed, helm_revision=5)
    blocked = StepRecord("glance", "glance", "openstack", "blocked", StepStatus.blocked)
    for step in (ok, bad, back, blocked):
        svc.store.add_step(run_id, step)
    svc.store.finish_run(run_id, RunStatus.failed, error="1 component failed")
    with svc.server.client() as c:
        page = c.get(f"/runs/{run_id}", headers={"Authorization": basic(), "Accept": BROWSER}).text
    rows = re.findall(r"<tr([^>]*)><td>([a-z]+)</td><td>([a-z:-]+)</td>", page)
    assert rows == [
        ("", "rabbitmq", "upgrade"),
        (' class="failed" id="failed-step"', "keystone", "upgrade"),
        (' class="failed"', "keystone", "rollback"),
        (' class="blocked"', "glance", "blocked"),
    ]
    assert "keystone upgrade failed (rolled back); glance blocked" in page  # the one-line summary
    assert "&lt;script&gt;alert(1)&lt;/script&gt; token ***" in page and "<script>" not in page
    assert WEBHOOK_SECRET not in page
    assert "<details><summary>output</summary>" in page
    assert "refresh" not in page  # a finished run does not reload


class _Queue:
    def __init__(self, running: int | None, progress: dict[str, str]) -> None:
        self.running_run_id = running
        self._progress = progress

    def progress(self) -> dict[str, str]:
        return self._progress


def _ctx(running: int | None = None, progress: dict[str, str] | None = None) -> Any:
    return types.SimpleNamespace(queue=_Queue(running, progress or {}), redact=Redactor(["s3cr3t-value"]))


def test_check_results_on_the_record_are_shown_failed_ones_highlighted() -> None:
    run = RunRecord(9, "dev", "c" * 40, "push", RunStatus.failed, "2026-11-28T12:00:00+00:00")
    object.__setattr__(run, "checks", (  # what the smoke-check work records on a run
        {"name": "token-issue", "component": "keystone", "status": "passed", "duration": 0.8, "sla": 5,
         "log_tail": "token issued"},
        {"name": "server-boot", "component": "nova", "status": "slow", "duration": 61.0, "sla": 30,
         "log_tail": "password s3cr3t-value <b>"},
    ))
    page = render_run(run, _ctx())
    assert "<h2>Checks</h2>" in page
    assert '<tr><td>token-issue</td><td>keystone</td><td class="status-succeeded">passed</td><td>0.8 s</td>' \
        '<td>5 s</td>' in page
    assert '<tr class="failed"><td>server-boot</td><td>nova</td><td class="status-failed">slow</td>' in page
    assert "password *** &lt;b&gt;" in page and "s3cr3t-value" not in page
    assert "check server-boot slow (61.0 s &gt; SLA 30 s)" in page


def test_a_running_run_shows_what_each_component_is_doing_and_refreshes() -> None:
    run = RunRecord(3, "dev", "c" * 40, "push", RunStatus.running, "2026-11-28T12:00:00+00:00")
    page = render_run(run, _ctx(3, {"keystone": "helm upgrade", "nova": "bootstrap (before)"}))
    assert '<meta http-equiv="refresh" content="2">' in page
    assert '<tr class="running"><td>keystone</td><td>helm upgrade</td></tr>' in page
    assert '<tr class="running"><td>nova</td><td>bootstrap (before)</td></tr>' in page
    assert "<h2>Checks</h2>" not in page  # a record without checks has no checks section
