"""The seam to the run record's check results: objects or mappings, absent or empty."""

from __future__ import annotations

import dataclasses
import enum

from deploy_manager.models.run import RunRecord, RunStatus
from deploy_manager.notify.checks import CheckView, checks_of


class Status(enum.StrEnum):
    passed = "passed"
    slow = "slow"


@dataclasses.dataclass(frozen=True)
class Result:  # shaped like a `GET /smoke` entry
    name: str
    component: str
    status: Status
    duration: float
    finished_at: str
    run_id: int
    log_tail: str


def record() -> RunRecord:
    return RunRecord(1, "dev", "a" * 40, "push", RunStatus.succeeded, "2026-11-28T12:00:00+00:00")


def test_a_record_without_checks_has_none() -> None:
    assert checks_of(record()) == []
    run = record()
    object.__setattr__(run, "checks", ())
    assert checks_of(run) == []


def test_objects_and_mappings_read_the_same() -> None:
    run = record()
    object.__setattr__(run, "checks", (
        Result("token-issue", "keystone", Status.slow, 7.5, "2026-11-28T12:01:00+00:00", 1, "slow"),
        {"name": "catalog", "component": "keystone", "status": "passed", "duration": "0.4", "sla": 5},
        {"name": "odd", "status": None, "duration": True},
    ))
    assert checks_of(run) == [
        CheckView("token-issue", "keystone", "slow", 7.5, None, "2026-11-28T12:01:00+00:00", "slow"),
        CheckView("catalog", "keystone", "passed", 0.4, 5.0, None, ""),
        CheckView("odd", "", "", None, None, None, ""),
    ]
    assert [c.failed for c in checks_of(run)] == [True, False, False]


def test_a_run_records_checks_as_its_smoke_steps() -> None:
    """What a run of the smoke-check step kind records (action `smoke:<check>`, first reason
    `smoke_<status>`) is what the notifications and the run page show; other steps are not checks."""
    from deploy_manager.models.plan import Reason
    from deploy_manager.models.run import StepRecord, StepStatus

    steps = (
        StepRecord("keystone", "keystone", "openstack", "upgrade", StepStatus.succeeded, (Reason("changed", "x"),)),
        StepRecord(
            "keystone", "", "openstack", "smoke:token-issue", StepStatus.failed,
            (Reason("smoke_slow", "passed in 7.5 s, over its SLA"),), duration=7.5, output_tail="tail",
            finished_at="2026-11-28T12:01:00+00:00",
        ),
        StepRecord(
            "glance", "", "openstack", "smoke:image-crud", StepStatus.succeeded, (Reason("smoke_passed", "ok"),)
        ),
    )
    run = dataclasses.replace(record(), steps=steps)
    assert checks_of(run) == [
        CheckView("token-issue", "keystone", "slow", 7.5, None, "2026-11-28T12:01:00+00:00", "tail"),
        CheckView("image-crud", "glance", "passed", 0.0, None, None, ""),
    ]
    assert [c.failed for c in checks_of(run)] == [True, False]
