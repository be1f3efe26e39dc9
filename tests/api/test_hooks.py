"""POST /hooks/github and /hooks/jenkins over real HTTP: signatures, events, refs, coalescing, bad input."""

from __future__ import annotations

import json
import threading
from urllib.parse import urlencode

import httpx
import pytest

from tests.api.conftest import Service, ServiceFactory
from tests.servicelib import JENKINS_TOKEN, WEBHOOK_SECRET, github_headers, push_payload, sign, wait_for

ZERO = "0" * 40


def post_push(client: httpx.Client, commit: str, ref: str = "refs/heads/main", **extra: object) -> httpx.Response:
    body = push_payload(commit, ref, **extra)
    return client.post("/hooks/github", content=body, headers=github_headers(body))


def runs_count(svc: Service) -> int:
    return len(svc.store.list_runs(cluster="dev"))


def test_a_signed_push_queues_one_run_that_deploys_the_commit(service: Service) -> None:
    sha = service.commit("v1")
    with service.server.client() as c:
        r = post_push(c, sha)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "queued" and isinstance(body["run_id"], int)
    assert service.queue.wait_idle(20)
    run = service.store.get_run(body["run_id"])
    assert run is not None and run.commit == sha and run.status.value == "succeeded" and run.trigger == "github"


def test_the_same_push_delivered_twice_is_coalesced(service: Service) -> None:
    sha = service.commit("v1")
    with service.server.client() as c:
        first = post_push(c, sha).json()
        service.queue.wait_idle(20)
        again = post_push(c, sha)
    assert again.status_code == 202
    assert again.json() == {"run_id": first["run_id"], "status": "coalesced", "reason": "already deployed"}


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body, headers: (body + b" ", headers),  # body changed after signing
        lambda body, headers: (body, {k: v for k, v in headers.items() if k != "X-Hub-Signature-256"}),
        lambda body, headers: (body, {**headers, "X-Hub-Signature-256": sign(body, "another-secret-value")}),
        lambda body, headers: (body, {**headers, "X-Hub-Signature-256": "sha1=" + "0" * 40}),
        lambda body, headers: (body, {**headers, "X-Hub-Signature-256": "sha256=\xe4".encode("latin-1")}),
    ],
    ids=["tampered-body", "missing", "wrong-secret", "wrong-scheme", "non-ascii"],
)
def test_a_bad_signature_is_401_and_nothing_happens(service: Service, tamper: object) -> None:
    sha = service.commit("v1")
    before = runs_count(service)
    body = push_payload(sha)
    body, headers = tamper(body, github_headers(body))  # type: ignore[operator]
    with service.server.client() as c:
        r = c.post("/hooks/github", content=body, headers=headers)
    assert r.status_code == 401
    assert "signature" in r.json()["detail"].lower()
    assert runs_count(service) == before and service.queue.depth == 0


def test_ping_is_200_and_queues_nothing(service: Service) -> None:
    body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 42}).encode()
    with service.server.client() as c:
        r = c.post("/hooks/github", content=body, headers=github_headers(body, event="ping"))
    assert r.status_code == 200 and r.json() == {"status": "pong", "hook_id": 42}
    assert runs_count(service) == 1  # only the start-up run


@pytest.mark.parametrize(
    ("ref", "extra"),
    [
        ("refs/heads/feature", {}),
        ("refs/tags/v1.0", {}),
        ("refs/heads/main", {"deleted": True}),
    ],
    ids=["other-branch", "tag", "deleted"],
)
def test_pushes_that_do_not_move_the_branch_are_202_without_a_run(service: Service, ref: str, extra: dict) -> None:
    sha = service.commit("v1")
    before = runs_count(service)
    with service.server.client() as c:
        r = post_push(c, ZERO if extra.get("deleted") else sha, ref, **extra)
    assert r.status_code == 202
    assert r.json()["status"] == "ignored" and r.json()["run_id"] is None
    assert runs_count(service) == before


def test_an_all_zero_after_is_a_deleted_ref(service: Service) -> None:
    with service.server.client() as c:
        r = post_push(c, ZERO)
    assert r.status_code == 202 and r.json()["status"] == "ignored"


@pytest.mark.parametrize("event", ["issues", "pull_request", ""])
def test_unknown_events_are_4xx_json_and_never_a_run(service: Service, event: str) -> None:
    sha = service.commit("v1")
    before = runs_count(service)
    body = push_payload(sha)
    with service.server.client() as c:
        r = c.post("/hooks/github", content=body, headers=github_headers(body, event=event))
    assert r.status_code == 400 and "event" in r.json()["detail"]
    assert runs_count(service) == before


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b'{"ref": "refs/heads/main"}', "application/json", 400),
        (b'{"ref": "refs/heads/main", "after": "xyz"}', "application/json", 400),
        (b"<push/>", "application/xml", 415),
        (b"payload-without-field", "application/x-www-form-urlencoded", 400),
    ],
)
def test_bad_signed_bodies_are_4xx_json(service: Service, body: bytes, content_type: str, status: int) -> None:
    headers = {**github_headers(body), "Content-Type": content_type}
    with service.server.client() as c:
        r = c.post("/hooks/github", content=body, headers=headers)
    assert r.status_code == status and r.headers["content-type"] == "application/json"
    assert r.json()["detail"]


def test_form_encoded_push_as_github_can_send_it(service: Service) -> None:
    sha = service.commit("v1")
    body = urlencode({"payload": push_payload(sha).decode()}).encode()
    headers = {**github_headers(body), "Content-Type": "application/x-www-form-urlencoded"}
    with service.server.client() as c:
        r = c.post("/hooks/github", content=body, headers=headers)
    assert r.status_code == 202 and r.json()["status"] == "queued"


def test_a_body_over_the_limit_is_413(service: Service) -> None:
    body = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    with service.server.client() as c:
        r = c.post("/hooks/github", content=body, headers=github_headers(body))
        # Chunked (no Content-Length): counted while reading.
        chunked = c.post("/hooks/github", content=iter([body[:1000], body[1000:]]), headers=github_headers(body))
    assert r.status_code == 413 and "bytes" in r.json()["detail"]
    assert chunked.status_code == 413 and "bytes" in chunked.json()["detail"]


def test_a_push_storm_during_a_run_is_coalesced_into_one_pending_run(make_service: ServiceFactory) -> None:
    gate = threading.Event()
    svc = make_service(gate=gate)
    assert svc.pipeline.started.wait(20)  # the start-up run is held open
    shas = [svc.commit(f"v{i}") for i in range(20)]
    with svc.server.client() as c:
        answers = [post_push(c, sha).json() for sha in shas]
    assert answers[0]["status"] == "queued"
    assert {a["status"] for a in answers[1:]} == {"coalesced"}
    assert {a["run_id"] for a in answers} == {answers[0]["run_id"]}
    gate.set()
    assert svc.queue.wait_idle(20)
    assert runs_count(svc) == 2
    assert svc.pipeline.applied[-1][1] == shas[-1]


def test_webhook_disabled_without_a_secret(make_service: ServiceFactory) -> None:
    svc = make_service(github_webhook_secret=None, jenkins_token=None)
    body = push_payload(svc.commit("v1"))
    with svc.server.client() as c:
        gh = c.post("/hooks/github", content=body, headers=github_headers(body))
        jk = c.post("/hooks/jenkins", headers={"Authorization": f"Bearer {JENKINS_TOKEN}"})
    assert gh.status_code == 503 and "DM_GITHUB_WEBHOOK_SECRET" in gh.json()["detail"]
    assert jk.status_code == 503 and "DM_JENKINS_TOKEN" in jk.json()["detail"]
    assert runs_count(svc) == 1


def test_jenkins_with_the_token_queues_the_branch_head(service: Service) -> None:
    sha = service.commit("v1")
    with service.server.client() as c:
        r = c.post(
            "/hooks/jenkins",
            json={"ref": "refs/heads/main", "commit": sha},
            headers={"Authorization": f"Bearer {JENKINS_TOKEN}"},
        )
        empty = c.post("/hooks/jenkins", headers={"Authorization": f"Bearer {JENKINS_TOKEN}"})
    assert r.status_code == 202 and r.json()["status"] == "queued"
    # Without a commit: joins the pending run, or queues the next one if the first already started.
    assert empty.status_code == 202 and empty.json()["status"] in ("queued", "coalesced")
    assert service.queue.wait_idle(20)
    assert service.pipeline.applied[-1] == ("jenkins", sha)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong-token-value"}, 401),
        ({"Authorization": f"Basic {JENKINS_TOKEN}"}, 401),
        ({"Authorization": f"Bearer {WEBHOOK_SECRET}"}, 401),
    ],
)
def test_jenkins_without_the_token_is_401(service: Service, headers: dict[str, str], status: int) -> None:
    with service.server.client() as c:
        r = c.post("/hooks/jenkins", headers=headers, json={})
    assert r.status_code == status and r.json()["detail"]
    assert runs_count(service) == 1


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{bad", "application/json", 400),
        (b'{"commit": "not-a-sha"}', "application/json", 422),
        (b'{"ref": 5}', "application/json", 422),
        (b"ref=main", "text/plain", 415),
        (b"ref=main", "application/x-www-form-urlencoded", 415),  # a real form: not a JSON object
        (b'["main"]', "application/x-www-form-urlencoded", 415),
        (b'{"commit": "not-a-sha"}', "application/x-www-form-urlencoded", 422),
    ],
)
def test_jenkins_bad_bodies(service: Service, body: bytes, content_type: str, status: int) -> None:
    headers = {"Authorization": f"Bearer {JENKINS_TOKEN}", "Content-Type": content_type}
    with service.server.client() as c:
        r = c.post("/hooks/jenkins", content=body, headers=headers)
    assert r.status_code == status and r.json()["detail"]
    assert "not-a-sha" not in r.text  # errors never echo the input


def test_jenkins_accepts_a_json_object_sent_as_a_form_like_curl_d(service: Service) -> None:
    sha = service.commit("v1")
    body = json.dumps({"ref": "refs/heads/main", "commit": sha}).encode()
    headers = {"Authorization": f"Bearer {JENKINS_TOKEN}", "Content-Type": "application/x-www-form-urlencoded"}
    with service.server.client() as c:
        r = c.post("/hooks/jenkins", content=body, headers=headers)
        other = c.post("/hooks/jenkins", content=b'{"ref": "feature"}', headers=headers)
    assert r.status_code == 202 and r.json()["status"] in ("queued", "coalesced"), r.text
    assert other.status_code == 202 and other.json()["status"] == "ignored"
    assert service.queue.wait_idle(20)
    assert service.pipeline.applied[-1] == ("jenkins", sha)


@pytest.mark.parametrize("sha", ["0123456789abcdef0123456789abcdef01234567", "abcdef1"])
def test_jenkins_with_an_unknown_commit_is_422_and_no_run(service: Service, sha: str) -> None:
    assert service.queue.wait_idle(20)
    with service.server.client() as c:
        r = c.post("/hooks/jenkins", json={"commit": sha}, headers={"Authorization": f"Bearer {JENKINS_TOKEN}"})
    assert r.status_code == 422 and sha in r.json()["detail"], r.text
    assert runs_count(service) == 1


def test_jenkins_other_branch_is_ignored(service: Service) -> None:
    with service.server.client() as c:
        r = c.post("/hooks/jenkins", json={"ref": "feature"}, headers={"Authorization": f"Bearer {JENKINS_TOKEN}"})
    assert r.status_code == 202 and r.json()["status"] == "ignored"


def test_webhook_outcomes_are_counted(service: Service) -> None:
    sha = service.commit("v1")
    body = push_payload(sha)
    with service.server.client() as c:
        post_push(c, sha)
        c.post("/hooks/github", content=body, headers={**github_headers(body), "X-Hub-Signature-256": "sha256=00"})
    registry = service.queue.metrics.registry
    value = wait_for(lambda: registry.get_sample_value("deploy_manager_webhook_requests_total",
                                                       {"hook": "github", "outcome": "queued"}))
    assert value == 1
    assert registry.get_sample_value(
        "deploy_manager_webhook_requests_total", {"hook": "github", "outcome": "unauthorized"}
    ) == 1


def test_a_trigger_during_shutdown_is_503_not_500(make_service: ServiceFactory) -> None:
    gate = threading.Event()
    svc = make_service(gate=gate)
    assert svc.pipeline.started.wait(20)
    stopper = threading.Thread(target=svc.queue.stop)  # what the lifespan does on SIGTERM
    stopper.start()
    wait_for(lambda: svc.queue._stopping.is_set())
    sha = svc.commit("v1")
    with svc.server.client() as c:
        r = post_push(c, sha)
    assert r.status_code == 503 and "shutting down" in r.json()["detail"]
    gate.set()
    stopper.join(20)


def test_a_signed_push_without_a_content_type_is_read_as_json(service: Service) -> None:
    sha = service.commit("v1")
    body = push_payload(sha)
    headers = {k: v for k, v in github_headers(body).items() if k != "Content-Type"}
    with service.server.client() as c:
        r = c.post("/hooks/github", content=body, headers=headers)
    assert r.status_code == 202 and r.json()["status"] == "queued"
