"""Map the pipeline's typed records (`deploy_manager.models`: RunRecord, Plan, ReleaseStatus) to the public API
models (`api/schemas.py`). The inputs are typed: nothing is coerced by guesswork."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from deploy_manager.api.schemas import (
    ActionOut,
    ObjectDiffOut,
    PlanDiffObjectOut,
    PlanOut,
    ReasonOut,
    ReleaseOut,
    RunDetailOut,
    RunOut,
    StepOut,
)
from deploy_manager.models.plan import Plan, Reason
from deploy_manager.models.run import ReleaseStatus, RunRecord
from deploy_manager.plan_diff import ComponentDiff

# helm's own time format: "2026-11-24 20:11:24.123456789 +0000 UTC"
_HELM_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d+))?\s*([+-]\d{2}:?\d{2}|Z)?")


def parse_time(value: str | None) -> dt.datetime | None:
    """ISO 8601 or helm's time format -> aware datetime; None for empty/unknown formats."""
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        m = _HELM_TIME.match(value.strip())
        if m is None:
            return None
        date, clock, frac, tz = m.groups()
        tz = "+00:00" if tz in (None, "Z") else (tz if ":" in tz else f"{tz[:3]}:{tz[3:]}")
        parsed = dt.datetime.fromisoformat(f"{date}T{clock}.{(frac or '0')[:6].ljust(6, '0')}{tz}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def healthy(status: str, state: str) -> bool:
    """Deployed by helm and not changed behind our back (out-of-sync only means a newer commit waits)."""
    return status == "deployed" and state not in ("drifted", "failed", "locked")


def release_out(r: ReleaseStatus, last_run_id: int | None) -> ReleaseOut:
    return ReleaseOut(
        component=r.component,
        release=r.release,
        namespace=r.namespace,
        chart=r.chart or None,
        chart_version=r.chart_version or None,
        revision=r.revision,
        status=r.status,
        commit=r.commit,
        digest=r.digest,
        deployed_at=parse_time(r.updated),
        last_run_id=last_run_id,
        healthy=healthy(r.status, r.state),
        state=r.state or None,
        deployed_commit=r.deployed_commit,
        checks=None,
    )


def _reasons(reasons: tuple[Reason, ...]) -> list[ReasonOut]:
    return [ReasonOut(code=r.code, message=r.message, paths=list(r.paths)) for r in reasons]


Redact = Callable[[str | None], str | None]


def _same(text: str | None) -> str | None:
    return text


def run_out(run: RunRecord, redact: Redact = _same) -> RunOut:
    return RunOut(
        id=run.id,
        cluster=run.cluster,
        trigger=run.trigger,
        commit=run.commit,
        status=run.status.value,
        created_at=parse_time(run.created_at),
        started_at=parse_time(run.started_at),
        finished_at=parse_time(run.finished_at),
        error=redact(run.error or None),
    )


def run_detail_out(run: RunRecord, redact: Redact = _same) -> RunDetailOut:
    steps = [
        StepOut(
            component=s.component,
            release=s.release,
            namespace=s.namespace,
            action=s.action,
            status=s.status.value,
            reasons=[r.message for r in s.reasons],
            reason_details=_reasons(s.reasons),
            helm_revision=s.helm_revision,
            duration=round(s.duration, 3),
            exit_code=s.exit_code,
            output_tail=redact(s.output_tail or None),
            error=redact(s.error or None),
            started_at=parse_time(s.started_at),
            finished_at=parse_time(s.finished_at),
        )
        for s in run.steps
    ]
    return RunDetailOut(**run_out(run, redact).model_dump(), steps=steps)


def plan_out(plan: Plan, rev: str, diffs: list[ComponentDiff] | None = None) -> PlanOut:
    out = _plan_out(plan, rev)
    if diffs is None:
        return out
    by_component = {d.component: d for d in diffs}
    for action in out.actions:
        d = by_component.get(action.component)
        if d is not None:
            action.diff = [ObjectDiffOut(**o.to_dict()) for o in d.objects]
            action.values_paths = list(d.values_paths)
    out.diff = [PlanDiffObjectOut(component=d.component, **o.to_dict()) for d in diffs for o in d.objects]
    return out


def _plan_out(plan: Plan, rev: str) -> PlanOut:
    return PlanOut(
        cluster=plan.cluster,
        rev=rev,
        commit=plan.commit,
        actions=[
            ActionOut(
                component=a.component,
                release=a.release,
                namespace=a.namespace,
                action=a.action.value,
                reasons=[r.message for r in a.reasons],
                reason_details=_reasons(a.reasons),
                state=a.state.value,
                needs=list(a.needs),
                wave=a.wave,
                digest=a.digest,
                revision=a.revision,
            )
            for a in plan.actions
        ],
        waves=plan.waves,
    )
