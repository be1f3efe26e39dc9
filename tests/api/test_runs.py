"""GET /runs, GET /runs/{id}, POST /runs over real HTTP."""

from __future__ import annotations

import threading

import pytest

from deploy_manager.models.plan import Reason
from deploy_manager.models.run import StepRecord, StepStatus
from tests.api.conftest import Service, ServiceFactory
from tests.corelib import git
from tests.servicelib import READ_TOKEN, WRITE_TOKEN


def test_runs_are_listed_newest_first_with_the_documented_fields(service: Service) -> None:
    with service.server.client(WRITE_TOKEN) as c:
        for i in range(3):
            service.commit(f"v{i}")
            assert c.post("/runs").status_code == 202
            service.queue.wait_idle(20)
        runs = c.get("/runs").json()
        limited = c.get("/runs", params={"limit": 2}).json()
    ids = [r["id"] for r in runs]
    assert ids == sorted(ids, reverse=True) and len(ids) == 4
    assert [r["id"] for r in limited] == ids[:2]
    newest = runs[0]
    assert {"id", "trigger", "commit", "status", "started_at", "finished_at"} <= set(newest)
    assert newest["trigger"] == "manual" and newest["status"] == "succeeded"
    assert newest["commit"] == git(service.repo, "rev-parse", "HEAD")


def test_run_detail_has_steps_with_reasons_durations_and_output(service: Service) -> None:
    run_id = service.store.list_runs(cluster="dev")[0].id
    service.store.add_step(
        run_id,
        StepRecord(
            component="keystone",
            release="keystone",
            namespace="openstack",
            action="upgrade",
            status=StepStatus.succeeded,
            reasons=(Reason("values_changed", "values changed: conf.keystone", ("conf.keystone",)),),
            helm_revision=3,
            duration=1.25,
            output_tail="Release \"keystone\" has been upgraded.",
        ),
    )
    with service.server.client(READ_TOKEN) as c:
        detail = c.get(f"/runs/{run_id}").json()
    (step,) = detail["steps"]
    assert step["action"] == "upgrade" and step["status"] == "succeeded"
    assert step["reasons"] == ["values changed: conf.keystone"]
    assert step["reason_details"] == [
        {"code": "values_changed", "message": "values changed: conf.keystone", "paths": ["conf.keystone"]}
    ]
    assert step["duration"] == 1.25
    assert step["helm_revision"] == 3 and "upgraded" in step["output_tail"]


@pytest.mark.parametrize(("path", "status"), [("/runs/999999", 404), ("/runs/abc", 422), ("/runs/0", 422)])
def test_a_missing_or_bad_run_id_is_4xx_json(service: Service, path: str, status: int) -> None:
    with service.server.client(READ_TOKEN) as c:
        r = c.get(path)
    assert r.status_code == status and r.json()["detail"]


@pytest.mark.parametrize("query", ["limit=0", "limit=-1", "limit=abc", "limit=100000", "status=exploded"])
def test_bad_query_values_are_422(service: Service, query: str) -> None:
    with service.server.client(READ_TOKEN) as c:
        r = c.get(f"/runs?{query}")
    assert r.status_code == 422 and r.json()["detail"]


def test_status_filter(service: Service) -> None:
    with service.server.client(READ_TOKEN) as c:
        assert [r["status"] for r in c.get("/runs", params={"status": "succeeded"}).json()] == ["succeeded"]
        assert c.get("/runs", params={"status": "failed"}).json() == []


def test_post_runs_with_a_revision_deploys_it(service: Service) -> None:
    old = git(service.repo, "rev-parse", "HEAD")
    service.commit("v1")
    with service.server.client(WRITE_TOKEN) as c:
        r = c.post("/runs", json={"revision": old[:10]})
    assert r.status_code == 202 and r.json()["status"] == "queued"
    assert service.queue.wait_idle(20)
    assert service.pipeline.applied[-1] == ("manual", old)


@pytest.mark.parametrize("field", ["revision", "rev", "ref", "commit", "?rev="])
def test_post_runs_accepts_the_revision_under_each_spelling(service: Service, field: str) -> None:
    old = git(service.repo, "rev-parse", "HEAD")
    service.commit("v1")
    with service.server.client(WRITE_TOKEN) as c:
        kwargs: dict = {"params": {"rev": old[:10]}} if field == "?rev=" else {"json": {field: old[:10]}}
        r = c.post("/runs", **kwargs)
    assert r.status_code == 202 and r.json()["status"] == "queued", r.text
    assert service.queue.wait_idle(20)
    assert service.pipeline.applied[-1] == ("manual", old)


@pytest.mark.parametrize(
    "kwargs", [{"json": {"revision": "no-such-branch"}}, {"json": {"commit": "abcdef1"}}, {"params": {"rev": "v9"}}]
)
def test_post_runs_with_an_unknown_revision_is_422_naming_it_and_creates_no_run(
    service: Service, kwargs: dict
) -> None:
    assert service.queue.wait_idle(20)
    with service.server.client(WRITE_TOKEN) as c:
        r = c.post("/runs", **kwargs)
    name = next(iter((kwargs.get("json") or kwargs["params"]).values()))
    assert r.status_code == 422 and f"unknown revision {name!r}" in r.json()["detail"]
    assert len(service.store.list_runs(cluster="dev")) == 1  # only the start-up run


def test_post_runs_finds_a_revision_pushed_after_the_last_fetch(service: Service) -> None:
    assert service.queue.wait_idle(20)
    git(service.repo, "tag", "v2")  # not fetched yet: the check fetches before it resolves
    with service.server.client(WRITE_TOKEN) as c:
        r = c.post("/runs", json={"ref": "v2"})
    assert r.status_code == 202 and r.json()["status"] in ("queued", "coalesced")


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"content": b"{oops", "headers": {"Content-Type": "application/json"}}, 400),
        ({"content": b"revision=main", "headers": {"Content-Type": "text/plain"}}, 415),
        ({"json": {"revision": "--upload-pack=evil"}}, 422),
        ({"json": {"revision": "main", "force": True}}, 422),
        ({"json": ["main"]}, 422),
        ({"params": {"rev": "-x"}}, 422),
    ],
)
def test_post_runs_bad_input_is_4xx_and_queues_nothing(service: Service, kwargs: dict, status: int) -> None:
    with service.server.client(WRITE_TOKEN) as c:
        r = c.post("/runs", **kwargs)
    assert r.status_code == status and r.json()["detail"]
    assert len(service.store.list_runs(cluster="dev")) == 1


def test_runs_show_queued_and_running_states(make_service: ServiceFactory) -> None:
    gate = threading.Event()
    svc = make_service(gate=gate)
    assert svc.pipeline.started.wait(20)
    svc.commit("v1")
    with svc.server.client(WRITE_TOKEN) as c:
        queued = c.post("/runs").json()
        states = {r["id"]: r["status"] for r in c.get("/runs").json()}
    assert states[queued["run_id"]] == "queued"
    assert "running" in states.values()
    gate.set()
    assert svc.queue.wait_idle(20)
