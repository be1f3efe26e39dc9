"""The one seam between the run record and its check results (issue 14 section 1, smoke checks).

A run record may carry `checks`: a sequence of check results, each an object or a mapping with the fields of
`GET /smoke` (`name`, `component`, `status`: passed|failed|slow|error, `duration`, `finished_at`, `run_id`,
`log_tail`) and optionally `sla` (seconds) and `gates`. Records without the attribute, or with an empty one,
have no checks. Everything that shows checks (commit status, notification, run page) reads them through
`checks_of`, so the smoke-check work only has to fill that list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deploy_manager.models.smoke import ACTION_PREFIX, step_check_status

CHECK_STATUSES = ("passed", "failed", "slow", "error")
# A pass slower than its SLA counts as failed (issue 14), as does a check that could not run.
FAILED_CHECK_STATUSES = frozenset({"failed", "slow", "error"})


@dataclass(frozen=True)
class CheckView:
    """One check result as the notifications and the status page show it."""

    name: str
    component: str = ""
    status: str = ""
    duration: float | None = None
    sla: float | None = None
    finished_at: str | None = None
    log_tail: str = ""

    @property
    def failed(self) -> bool:
        return self.status in FAILED_CHECK_STATUSES


def _field(item: Any, name: str) -> Any:
    if isinstance(item, Mapping):
        return item.get(name)
    return getattr(item, name, None)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def check_view(item: Any) -> CheckView:
    status = _field(item, "status")
    status = str(getattr(status, "value", status) or "")
    return CheckView(
        name=str(_field(item, "name") or ""),
        component=str(_field(item, "component") or ""),
        status=status,
        duration=_number(_field(item, "duration")),
        sla=_number(_field(item, "sla")),
        finished_at=_field(item, "finished_at") or None,
        log_tail=str(_field(item, "log_tail") or ""),
    )


def checks_of(run: Any) -> list[CheckView]:
    """The run's check results: its `checks` when it carries them, else the check steps of its record (action
    `smoke:<check>`, first reason `smoke_<status>`; `models.smoke.step_check_status`)."""
    items = getattr(run, "checks", None)
    if items:
        return [check_view(item) for item in items]
    out: list[CheckView] = []
    for step in getattr(run, "steps", None) or ():
        status = step_check_status(step.action, step.reasons)
        if status is None:
            continue
        out.append(
            CheckView(
                name=step.action.removeprefix(ACTION_PREFIX),
                component=step.component,
                status=status.value,
                duration=step.duration,
                finished_at=step.finished_at,
                log_tail=step.output_tail,
            )
        )
    return out
