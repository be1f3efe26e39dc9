"""The background sender and the notifier the run queue calls: never blocking, failures counted and logged
without secrets; statuses and notifications made from the stored run record."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from deploy_manager.metrics import ServiceMetrics
from deploy_manager.models.run import RunStatus, StepRecord, StepStatus
from deploy_manager.notify.github import GitHubStatuses
from deploy_manager.notify.sender import RunNotifier, Sender
from deploy_manager.notify.webhook import WebhookNotifier
from deploy_manager.redaction import Redactor
from deploy_manager.retry import RetryPolicy
from deploy_manager.store.sqlite import RunStore
from tests.notifylib import TOKEN, GitHubStatusServer, WebhookReceiver

SHA = "0123456789abcdef0123456789abcdef01234567"
FAST = RetryPolicy(attempts=2, initial=0.01, maximum=0.02)


def failures(metrics: ServiceMetrics, target: str) -> float:
    value = metrics.registry.get_sample_value("deploy_manager_notify_failures_total", {"target": target})
    return value or 0.0


def test_submit_never_blocks_and_a_full_queue_drops_the_job_counted() -> None:
    metrics = ServiceMetrics()
    sender = Sender(metrics=metrics, redact=Redactor(), size=1)
    release = threading.Event()
    sender.start()
    assert sender.submit("github", "slow job", release.wait)
    assert sender.wait_idle(0.05) is False  # the worker holds the slow job
    assert sender.submit("github", "queued job", lambda: None)  # the one free slot
    assert sender.submit("webhook", "one too many", lambda: None) is False
    assert failures(metrics, "webhook") == 1
    release.set()
    assert sender.wait_idle(5)
    sender.stop()


def test_a_failing_job_is_logged_masked_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    metrics = ServiceMetrics()
    sender = Sender(metrics=metrics, redact=Redactor([TOKEN]))
    sender.start()

    def boom() -> None:
        raise RuntimeError(f"refused with {TOKEN}")

    with caplog.at_level(logging.WARNING, logger="deploy_manager.notify.sender"):
        sender.submit("github", "final status of run 1", boom)
        assert sender.wait_idle(5)
    sender.stop()
    assert failures(metrics, "github") == 1
    assert "notification failed: final status of run 1 (github): RuntimeError: refused with ***" in caplog.text
    assert TOKEN not in caplog.text


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    s = RunStore(tmp_path / "db.sqlite")
    yield s
    s.close()


def test_statuses_and_the_notification_come_from_the_stored_record(store: RunStore) -> None:
    with GitHubStatusServer() as github, WebhookReceiver() as hook:
        metrics = ServiceMetrics()
        notifier = RunNotifier(
            cluster="dev",
            store=store,
            sender=Sender(metrics=metrics, redact=Redactor([TOKEN])),
            statuses=GitHubStatuses(api_url=github.api_url, token=TOKEN, repository="cloud/deploy", policy=FAST),
            webhook=WebhookNotifier(hook.hook_url, policy=FAST),
            public_url="https://dm.example.com/",
        )
        notifier.start()
        run_id = store.create_run(cluster="dev", commit=None, trigger="push")
        store.start_run(run_id, commit=SHA)
        notifier.run_started(run_id, SHA)
        store.add_step(run_id, StepRecord("keystone", "keystone", "openstack", "upgrade", StepStatus.failed))
        store.add_step(run_id, StepRecord("keystone", "keystone", "openstack", "rollback", StepStatus.failed))
        store.finish_run(run_id, RunStatus.failed, error="1 component failed")
        notifier.run_finished(run_id)
        notifier.stop(5)
        link = f"https://dm.example.com/runs/{run_id}"
        assert [(s["state"], s["description"], s["target_url"]) for s in github.statuses(SHA)] == [
            ("pending", "deploying to dev", link),
            ("failure", "keystone upgrade failed (rolled back)", link),
        ]
        assert {s["context"] for s in github.statuses()} == {"deploy-manager/dev"}
        [body] = hook.bodies()
        assert body["status"] == "failed" and body["failed_components"] == ["keystone"] and body["link"] == link
        assert failures(metrics, "github") == failures(metrics, "webhook") == 0


def test_a_run_without_a_commit_gets_no_status_but_a_notification(store: RunStore) -> None:
    with GitHubStatusServer() as github, WebhookReceiver() as hook:
        notifier = RunNotifier(
            cluster="dev",
            store=store,
            sender=Sender(metrics=ServiceMetrics(), redact=Redactor()),
            statuses=GitHubStatuses(api_url=github.api_url, token=TOKEN, repository="cloud/deploy", policy=FAST),
            webhook=WebhookNotifier(hook.hook_url, policy=FAST),
        )
        notifier.start()
        run_id = store.create_run(cluster="dev", commit=None, trigger="poll")
        store.finish_run(run_id, RunStatus.failed, error="cannot fetch or resolve main: unreachable")
        notifier.run_finished(run_id)
        notifier.stop(5)
        assert github.requests == 0
        [body] = hook.bodies()
        assert body["commit"] is None and body["link"] is None
        assert body["text"] == (
            f"deploy-manager dev: run {run_id} failed at no commit: cannot fetch or resolve main: unreachable"
        )
