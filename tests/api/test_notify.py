"""Commit statuses and run notifications from the service over real HTTP: the app on uvicorn (loopback), a real
git remote, the real store; GitHub's statuses API and the notification receiver are local strict servers.
(The pipeline is the stand-in of the HTTP tests; tests/api/test_notify_integration.py runs real helm.)"""

from __future__ import annotations

import logging
import socket

import pytest

from deploy_manager.notify import RunNotifier
from tests.api.conftest import Service, ServiceFactory
from tests.notifylib import TOKEN, GitHubStatusServer, WebhookReceiver
from tests.servicelib import READ_TOKEN, WRITE_TOKEN

PUBLIC = "https://deploy.example.com"


def start(make_service: ServiceFactory, api_url: str, hook: WebhookReceiver | None = None, **kw: object) -> Service:
    settings: dict[str, object] = {
        "github_api_url": api_url,
        "github_token": TOKEN,
        "github_repository": "cloud/deploy",
        "public_url": PUBLIC,
    }
    if hook is not None:
        settings["notify_url"] = hook.hook_url
    return make_service(**settings, **kw)


def notifier(svc: Service) -> RunNotifier:
    value = svc.server.app.state.notifier
    assert isinstance(value, RunNotifier)
    return value


def metric(svc: Service, name: str, target: str) -> float:
    with svc.server.client(READ_TOKEN) as c:
        text = c.get("/metrics").text
    line = next(line for line in text.splitlines() if line.startswith(f'{name}{{target="{target}"}}'))
    return float(line.split()[-1])


def test_a_run_posts_pending_then_success_and_notifies(
    make_service: ServiceFactory, github: GitHubStatusServer, hook: WebhookReceiver
) -> None:
    svc = start(make_service, github.api_url, hook)  # the start-up run deploys the head
    assert notifier(svc).sender.wait_idle(20)
    head = svc.queue.deployed_commit
    assert head is not None
    with svc.server.client(READ_TOKEN) as c:
        run = c.get("/runs", params={"limit": 1}).json()[0]
    assert run["status"] == "succeeded"
    link = f"{PUBLIC}/runs/{run['id']}"
    assert [(s["state"], s["context"], s["target_url"]) for s in github.statuses(head)] == [
        ("pending", "deploy-manager/dev", link),
        ("success", "deploy-manager/dev", link),
    ]
    assert github.statuses(head)[-1]["description"] == "nothing to change: every component in sync"
    [body] = hook.bodies()
    assert body["status"] == "succeeded" and body["cluster"] == "dev" and body["commit"] == head
    assert body["link"] == link and body["failed_components"] == [] and body["failed_checks"] == []
    assert body["text"].startswith(f"deploy-manager dev: run {run['id']} succeeded at {head[:12]}")
    assert metric(svc, "deploy_manager_notify_sent_total", "github") == 2
    assert metric(svc, "deploy_manager_notify_failures_total", "github") == 0


def test_a_failed_run_posts_failure(make_service: ServiceFactory, github: GitHubStatusServer) -> None:
    svc = start(make_service, github.api_url, pipeline_kwargs={"fail": True})
    assert notifier(svc).sender.wait_idle(20)
    (head,) = {s["sha"] for s in github.statuses()}
    assert [s["state"] for s in github.statuses(head)] == ["pending", "failure"]
    assert github.statuses(head)[-1]["description"] == "the run failed"


@pytest.mark.parametrize("outage", ["500", "down"])
def test_github_failing_never_fails_the_run_and_is_counted(
    make_service: ServiceFactory, github: GitHubStatusServer, outage: str, caplog: pytest.LogCaptureFixture
) -> None:
    if outage == "500":
        github.fail_with = 500
        api_url = github.api_url
    else:
        with socket.socket() as sock:  # a port nobody listens on: the API is down
            sock.bind(("127.0.0.1", 0))
            api_url = f"http://127.0.0.1:{sock.getsockname()[1]}/api/v3"
    with caplog.at_level(logging.WARNING):
        svc = start(make_service, api_url)
        with svc.server.client(READ_TOKEN) as c:
            run = c.get("/runs", params={"limit": 1}).json()[0]
        assert run["status"] == "succeeded"  # decided before any status could be delivered
        assert notifier(svc).sender.wait_idle(60)
    assert metric(svc, "deploy_manager_notify_failures_total", "github") == 2  # pending and success given up
    if outage == "500":
        assert github.requests == 2 * 4  # each retried with backoff (4 attempts)
    assert "notification failed: pending status of run" in caplog.text
    assert TOKEN not in caplog.text


def test_a_wrong_token_is_logged_without_the_token(
    make_service: ServiceFactory, github: GitHubStatusServer, caplog: pytest.LogCaptureFixture
) -> None:
    github.token = "ghp_the_right_one_0123456789"
    with caplog.at_level(logging.WARNING):
        svc = start(make_service, github.api_url)
        assert notifier(svc).sender.wait_idle(20)
    assert "github answered 401: Bad credentials" in caplog.text and TOKEN not in caplog.text
    assert github.requests == 2  # refused: not retried


def test_a_later_push_gets_its_own_statuses(make_service: ServiceFactory, github: GitHubStatusServer) -> None:
    svc = start(make_service, github.api_url)
    sha = svc.commit("v1\n")
    with svc.server.client(WRITE_TOKEN) as c:
        answer = c.post("/runs", json={"revision": sha})
    assert answer.status_code == 202
    assert svc.queue.wait_idle(20) and notifier(svc).sender.wait_idle(20)
    run_id = answer.json()["run_id"]
    assert [(s["state"], s["target_url"]) for s in github.statuses(sha)] == [
        ("pending", f"{PUBLIC}/runs/{run_id}"),
        ("success", f"{PUBLIC}/runs/{run_id}"),
    ]


def test_without_settings_nothing_is_sent(service: Service) -> None:
    assert service.server.app.state.notifier is None


def test_a_run_a_dead_process_left_pending_gets_an_error_status_on_restart(
    make_service: ServiceFactory, github: GitHubStatusServer
) -> None:
    first = start(make_service, github.api_url)
    assert notifier(first).sender.wait_idle(20)
    # What a killed process leaves behind: a run that resolved its commit (pending posted) and never finished.
    head = first.queue.deployed_commit
    assert head is not None
    orphan = first.store.create_run(cluster="dev", commit=None, trigger="push")
    first.store.start_run(orphan, commit=head)
    second = start(make_service, github.api_url, state_dir=first.settings.state_dir)
    assert second.queue.wait_idle(20) and notifier(second).sender.wait_idle(20)
    error = [s for s in github.statuses(head) if s["state"] == "error"]
    assert [(s["description"], s["target_url"]) for s in error] == [
        ("interrupted: the process running it stopped", f"{PUBLIC}/runs/{orphan}")
    ]
