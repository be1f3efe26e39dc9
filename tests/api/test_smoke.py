"""GET /smoke, the check metrics, /releases health and the status page's checks over real HTTP (issue 14).
The results come from the real store, as a run, `deploy-manager smoke` or the schedule writes them."""

from __future__ import annotations

import re

import pytest

from deploy_manager.models.smoke import SmokeResult, SmokeStatus
from tests.api.conftest import Service, ServiceFactory
from tests.api.test_releases import releases_at
from tests.servicelib import READ_TOKEN

FIELDS = {"name", "component", "status", "duration", "finished_at", "run_id", "log_tail"}


def result(name: str, component: str, status: SmokeStatus, run_id: int | None, tail: str = "ok") -> SmokeResult:
    return SmokeResult(
        cluster="dev",
        name=name,
        component=component,
        status=status,
        duration=2.5,
        finished_at="2026-11-28T12:00:00+00:00",
        run_id=run_id,
        log_tail=tail,
        sla=5.0,
    )


@pytest.fixture
def svc(make_service: ServiceFactory) -> Service:
    return make_service(pipeline_kwargs={"releases": releases_at})


def test_smoke_lists_the_latest_result_per_check(svc: Service) -> None:
    with svc.server.client(READ_TOKEN) as c:
        assert c.get("/smoke").json() == []
    svc.store.add_smoke(result("token-issue", "keystone", SmokeStatus.failed, 1, "401 from keystone"))
    svc.store.add_smoke(result("token-issue", "keystone", SmokeStatus.passed, 2))
    svc.store.add_smoke(result("server-boot", "nova", SmokeStatus.slow, None))
    svc.store.add_smoke(result("other", "nova", SmokeStatus.passed, 1))
    with svc.server.client(READ_TOKEN) as c:
        body = c.get("/smoke").json()
    assert [(r["name"], r["status"], r["run_id"]) for r in body] == [
        ("other", "passed", 1),
        ("server-boot", "slow", None),
        ("token-issue", "passed", 2),
    ]
    assert all(set(r) >= FIELDS for r in body)
    assert body[2]["component"] == "keystone" and body[2]["duration"] == 2.5 and body[2]["log_tail"] == "ok"
    assert body[2]["finished_at"].startswith("2026-11-28T12:00:00")


def test_smoke_needs_the_read_token(svc: Service) -> None:
    with svc.server.client(None) as c:
        assert c.get("/smoke").status_code == 401


def test_metrics_and_release_health_follow_the_latest_check(svc: Service) -> None:
    svc.store.add_smoke(result("token-issue", "keystone", SmokeStatus.failed, 1))
    svc.store.add_smoke(result("image-list", "glance", SmokeStatus.passed, 1))
    svc.queue.releases_version += 1
    with svc.server.client(READ_TOKEN) as c:
        text = c.get("/metrics").text
        releases = {r["component"]: r for r in c.get("/releases").json()}
        page = c.get("/").text
    assert re.search(r'^deploy_manager_smoke_check_success\{check="token-issue",cluster="dev"\} 0\.0$', text, re.M)
    assert re.search(r'^deploy_manager_smoke_check_success\{check="image-list",cluster="dev"\} 1\.0$', text, re.M)
    assert re.search(
        r'^deploy_manager_smoke_check_duration_seconds\{check="image-list",cluster="dev"\} 2\.5$', text, re.M
    )
    # keystone is deployed and in sync, but its latest check failed: not healthy.
    assert releases["keystone"]["healthy"] is False and releases["keystone"]["checks"] == {"token-issue": "failed"}
    assert releases["nova"]["checks"] is None
    assert "<h2>Checks</h2>" in page and "token-issue" in page and "2.5s / SLA 5s" in page
    svc.store.add_smoke(result("token-issue", "keystone", SmokeStatus.passed, 2))
    svc.queue.releases_version += 1
    with svc.server.client(READ_TOKEN) as c:
        keystone = next(r for r in c.get("/releases").json() if r["component"] == "keystone")
    assert keystone["healthy"] is True
