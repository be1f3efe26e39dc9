"""GET /releases and /releases/{name}: served from the store, with filters; last run id from the history."""

from __future__ import annotations

import pytest

from deploy_manager.models.run import ReleaseStatus
from tests.api.conftest import Service, ServiceFactory
from tests.servicelib import READ_TOKEN, WRITE_TOKEN

FIELDS = {
    "component", "release", "namespace", "chart", "chart_version", "revision", "status", "commit", "digest",
    "deployed_at", "last_run_id", "healthy", "deployed_commit",
}


def releases_at(commit: str) -> list[ReleaseStatus]:
    def rel(component: str, status: str, state: str) -> ReleaseStatus:
        return ReleaseStatus(
            component=component, release=component, namespace="openstack", chart=component, chart_version="0.1.0",
            revision=2, status=status, commit=commit, digest="d" * 64, state=state,
            updated="2026-11-24 20:11:24.123456789 +0000 UTC", deployed_commit="0" * 40,
        )

    return [
        rel("keystone", "deployed", "in-sync"),
        rel("glance", "failed", "failed"),
        rel("nova", "deployed", "drifted"),
    ]


@pytest.fixture
def svc(make_service: ServiceFactory) -> Service:
    return make_service(pipeline_kwargs={"releases": releases_at})


def test_releases_list_every_field(svc: Service) -> None:
    with svc.server.client(READ_TOKEN) as c:
        body = c.get("/releases").json()
    assert [r["component"] for r in body] == ["glance", "keystone", "nova"]
    assert all(set(r) >= FIELDS for r in body)
    keystone = body[1]
    assert keystone["commit"] == svc.queue.deployed_commit and keystone["status"] == "deployed"
    assert keystone["deployed_commit"] == "0" * 40
    assert keystone["healthy"] is True and keystone["deployed_at"].startswith("2026-11-24T20:11:24.123456")
    assert body[0]["healthy"] is False and body[2]["healthy"] is False  # failed, drifted


def test_filters(svc: Service) -> None:
    with svc.server.client(READ_TOKEN) as c:
        assert [r["component"] for r in c.get("/releases", params={"component": "nova"}).json()] == ["nova"]
        assert [r["component"] for r in c.get("/releases", params={"status": "failed"}).json()] == ["glance"]
        assert c.get("/releases", params={"component": "nova", "status": "failed"}).json() == []


@pytest.mark.parametrize("query", ["component=Not_A_Name", "status=%00", "component=" + "a" * 300])
def test_bad_filter_values_are_422(svc: Service, query: str) -> None:
    with svc.server.client(READ_TOKEN) as c:
        r = c.get(f"/releases?{query}")
    assert r.status_code == 422 and r.json()["detail"]


def test_one_release_by_name(svc: Service) -> None:
    with svc.server.client(READ_TOKEN) as c:
        one = c.get("/releases/keystone")
        missing = c.get("/releases/horizon")
    assert one.status_code == 200 and one.json()["release"] == "keystone"
    assert missing.status_code == 404 and "horizon" in missing.json()["detail"]


def test_last_run_id_and_commit_follow_each_run(svc: Service) -> None:
    with svc.server.client(READ_TOKEN) as c:
        first = {r["component"]: r for r in c.get("/releases").json()}
        sha = svc.commit("v1")
        with svc.server.client(WRITE_TOKEN) as w:
            run_id = w.post("/runs").json()["run_id"]
        assert svc.queue.wait_idle(20)
        after = {r["component"]: r for r in c.get("/releases").json()}
    assert first["keystone"]["last_run_id"] != run_id
    assert after["keystone"]["last_run_id"] == run_id and after["keystone"]["commit"] == sha
