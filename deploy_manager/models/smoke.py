"""Workflow checks (smoke checks, issue 14): what a check is and what one run of it found. Types only, no I/O.

A check is a script (a Jinja2 template under `bootstrap/smoke/`) run as a Kubernetes Job in its component's
namespace. Its result is `passed`, `failed` (non-zero exit or past its timeout), `slow` (passed, but slower than
its `sla`: counted as failed) or `error` (the check could not be run: no namespace, the API refused the Job).
On a run's record a check is a step with action `smoke:<check>` whose first reason's code is `smoke_<status>`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from deploy_manager.models.plan import Reason
from deploy_manager.models.run import StepRecord

ACTION_PREFIX = "smoke:"
REASON_PREFIX = "smoke_"
# The executor's node of a check: "smoke:<check>" can never be a component name (DNS labels have no colon).
NODE_PREFIX = ACTION_PREFIX


class SmokeStatus(enum.StrEnum):
    passed = "passed"
    failed = "failed"
    slow = "slow"
    error = "error"

    @property
    def ok(self) -> bool:
        """Only a pass within the SLA counts as a pass."""
        return self is SmokeStatus.passed


class AfterRun(enum.StrEnum):
    """`DM_SMOKE_AFTER_RUN`: which checks a run runs."""

    changed = "changed"  # checks whose component or gates the run wrote
    all = "all"
    none = "none"


@dataclass(frozen=True)
class SmokeCheck:
    """One check as declared in `values/_common/smoke.yaml` / `values/<cluster>/smoke.yaml`."""

    name: str
    script: str
    component: str
    image: str | None = None
    gates: tuple[str, ...] = ()
    timeout: int = 300
    sla: float | None = None
    schedule: int | None = None
    on_failure: str | None = None  # rollback: an ungated check's failure rolls back what the run wrote
    file: str = ""  # the file that declared (or last changed) it, for error messages
    # The script rendered with the component's values (what the Job runs).
    rendered: str = field(default="", repr=False, compare=False)

    @property
    def node(self) -> str:
        return NODE_PREFIX + self.name

    @property
    def action(self) -> str:
        return ACTION_PREFIX + self.name

    @property
    def names(self) -> tuple[str, ...]:
        """The components the check names: its component, then its gates."""
        return (self.component, *(g for g in self.gates if g != self.component))


@dataclass(frozen=True)
class CheckOutcome:
    """What one Job of a check did. `ok` None: the check could not be run at all (`message` says why)."""

    ok: bool | None
    duration: float
    message: str
    log_tail: str = ""
    job: str = ""
    exit_code: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    namespace: str = ""


@dataclass(frozen=True)
class SmokeResult:
    """One finished check, as stored and served by `GET /smoke`."""

    cluster: str
    name: str
    component: str
    status: SmokeStatus
    duration: float
    finished_at: str | None
    run_id: int | None
    log_tail: str = ""
    started_at: str | None = None
    error: str = ""
    job: str = ""
    sla: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "component": self.component,
            "status": self.status.value,
            "duration": round(self.duration, 3),
            "finished_at": self.finished_at,
            "run_id": self.run_id,
            "log_tail": self.log_tail,
            "started_at": self.started_at,
            "error": self.error,
            "job": self.job,
            "sla": self.sla,
        }


def result_of_step(
    cluster: str, run_id: int | None, step: StepRecord, status: SmokeStatus, sla: float | None = None
) -> SmokeResult:
    """The stored result of a check from its step on a run's record (a `StepRecord`)."""
    job = ""
    for reason in step.reasons:
        if reason.code.startswith(REASON_PREFIX) and "(Job " in reason.message:
            job = reason.message.rsplit("(Job ", 1)[1].rstrip(")").split("/", 1)[-1]
    return SmokeResult(
        cluster=cluster,
        name=step.action.removeprefix(ACTION_PREFIX),
        component=step.component,
        status=status,
        duration=step.duration,
        finished_at=step.finished_at,
        run_id=run_id,
        log_tail=step.output_tail,
        started_at=step.started_at,
        error=step.error,
        job=job,
        sla=sla,
    )


def status_reason(status: SmokeStatus, message: str) -> Reason:
    return Reason(REASON_PREFIX + status.value, message)


def step_check_status(action: str, reasons: tuple[Reason, ...]) -> SmokeStatus | None:
    """The check status a step of a run's record carries (None: the step is not a check that ran)."""
    if not action.startswith(ACTION_PREFIX):
        return None
    for reason in reasons:
        if reason.code.startswith(REASON_PREFIX):
            try:
                return SmokeStatus(reason.code.removeprefix(REASON_PREFIX))
            except ValueError:
                continue
    return None


def check_results(steps: Iterable[StepRecord]) -> dict[str, SmokeStatus]:
    """Each check that ran in a run (from its record's steps) and its status, in the order they finished: what
    a run's summary counts ("6 checks passed", `planner.smoke.summary` / `counts`)."""
    out: dict[str, SmokeStatus] = {}
    for step in steps:
        status = step_check_status(step.action, step.reasons)
        if status is not None:
            out[step.action.removeprefix(ACTION_PREFIX)] = status
    return out
