"""What a run's commit status and notification say, as a table of run records."""

from __future__ import annotations

from typing import Any

import pytest

from deploy_manager.models.run import RunRecord, RunStatus, StepRecord, StepStatus
from deploy_manager.notify.describe import DESCRIPTION_LIMIT, commit_state, describe, payload, summarize

SHA = "a" * 40
ok, failed, blocked, skipped = StepStatus.succeeded, StepStatus.failed, StepStatus.blocked, StepStatus.skipped


def step(component: str, action: str, status: StepStatus) -> StepRecord:
    return StepRecord(component, component, "openstack", action, status)


def run(status: str, steps: list[StepRecord] = (), error: str = "", checks: list[dict[str, Any]] = ()) -> RunRecord:
    record = RunRecord(7, "dev", SHA, "push", RunStatus.succeeded, "2026-11-28T12:00:00+00:00", steps=tuple(steps),
                       error=error)
    object.__setattr__(record, "status", status)  # "degraded" is the smoke-check work's new status
    if checks:  # the check results the smoke-check work adds to the record (`checks`)
        object.__setattr__(record, "checks", tuple(checks))
    return record


def check(name: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "component": "keystone", "status": status, "duration": 1.5, **extra}


UPGRADED3 = [step(c, "upgrade", ok) for c in ("keystone", "glance", "nova")]
PASSED6 = [check(f"c{i}", "passed") for i in range(6)]


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("queued", "pending"),
        ("running", "pending"),
        ("succeeded", "success"),
        ("failed", "failure"),
        ("degraded", "failure"),
        ("interrupted", "error"),
        ("superseded", "error"),
        ("something-new", "error"),
        (RunStatus.succeeded, "success"),
    ],
)
def test_commit_state(status: Any, state: str) -> None:
    assert commit_state(status) == state


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (run("succeeded", UPGRADED3, checks=PASSED6), "3 components upgraded, 6 checks passed"),
        (run("succeeded", UPGRADED3), "3 components upgraded"),
        (run("succeeded", [step("keystone", "upgrade", ok)]), "1 component upgraded"),
        (
            run("succeeded", [step("keystone", "install", ok), step("glance", "upgrade", ok),
                              step("nova", "none", skipped)]),
            "1 component upgraded, 1 installed",
        ),
        (run("succeeded", [step("keystone", "install", ok), step("glance", "install", ok)]), "2 components installed"),
        (run("succeeded", [step("keystone", "none", skipped)]), "nothing to change: every component in sync"),
        (run("succeeded", [], checks=PASSED6[:1]), "no component changed, 1 check passed"),
        # an unlock followed by the upgrade is one component upgraded
        (run("succeeded", [step("keystone", "unlock", ok), step("keystone", "upgrade", ok)]), "1 component upgraded"),
        (
            run("failed", [
                step("keystone", "upgrade", failed),
                step("keystone", "rollback", failed),
                step("glance", "blocked", blocked),
                step("nova", "blocked", blocked),
            ]),
            "keystone upgrade failed (rolled back); glance, nova blocked",
        ),
        (
            run("failed", [step("glance", "install", failed), step("glance", "uninstall", failed)]),
            "glance install failed (uninstalled)",
        ),
        (
            run("failed", [step("keystone", "bootstrap:db-sync", failed), step("nova", "blocked", blocked)]),
            "keystone bootstrap db-sync failed; nova blocked",
        ),
        (
            run("failed", [step("keystone", "upgrade", ok), step("glance", "blocked", blocked)],
                checks=[check("token-issue", "failed", gates=["keystone"])]),
            "check token-issue failed; glance blocked",
        ),
        (
            run("degraded", UPGRADED3, checks=[*PASSED6[:5], check("server-boot", "failed")]),
            "degraded: check server-boot failed; 3 components upgraded, 5 checks passed",
        ),
        (
            run("degraded", [], checks=[check("token-issue", "slow", duration=7.25, sla=5)]),
            "degraded: check token-issue slow (7.2 s > SLA 5 s)",
        ),
        (run("failed", [], checks=[check("volume-attach", "error")]), "check volume-attach errored"),
        (run("failed", [], error="values/dev/cluster.yaml:3: components.keystone: bad\nmore"),
         "values/dev/cluster.yaml:3: components.keystone: bad"),
        (run("failed", []), "the run failed"),
        (run("interrupted", [], error="the service is shutting down"), "interrupted: the service is shutting down"),
        (run("superseded", [], error="superseded by commit 0123456789ab, which changes keystone"),
         "superseded by commit 0123456789ab, which changes keystone"),
        (run("interrupted", [], error="interrupted: the process running it stopped"),
         "interrupted: the process running it stopped"),
        (run("interrupted", []), "interrupted before it finished"),
        (run("running", []), "deploying to dev"),
    ],
)
def test_describe(record: RunRecord, expected: str) -> None:
    assert describe(record) == expected


def test_a_long_description_is_cut_to_githubs_limit() -> None:
    steps = [step(f"component-with-a-long-name-{i}", "upgrade", failed) for i in range(20)]
    text = describe(run("failed", steps))
    assert len(text) == DESCRIPTION_LIMIT and text.endswith("…")
    assert text.startswith("component-with-a-long-name-0 upgrade failed; component-with-a-long-name-1")


def test_the_payload_names_what_failed_and_links_the_run() -> None:
    record = run("failed", [
        step("keystone", "upgrade", failed),
        step("keystone", "rollback", failed),
        step("glance", "blocked", blocked),
    ], checks=[check("token-issue", "failed"), check("catalog", "passed")])
    body = payload(record, "https://deploy.example.com/runs/7")
    assert body["status"] == "failed" and body["state"] == "failure"
    assert body["cluster"] == "dev" and body["commit"] == SHA and body["run_id"] == 7
    assert body["failed_components"] == ["keystone"]
    assert body["blocked_components"] == ["glance"]
    assert body["failed_checks"] == ["token-issue"]
    assert body["link"] == "https://deploy.example.com/runs/7"
    assert body["text"] == (
        "deploy-manager dev: run 7 failed at aaaaaaaaaaaa: keystone upgrade failed (rolled back); "
        "check token-issue failed; glance blocked <https://deploy.example.com/runs/7|run 7>"
    )
    assert summarize(record).passed_checks == ["catalog"]


def test_the_payload_without_a_public_url_has_no_link() -> None:
    body = payload(run("succeeded", UPGRADED3), None)
    assert body["link"] is None and "<" not in body["text"]
    assert body["text"].endswith(": 3 components upgraded")
