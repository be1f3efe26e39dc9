"""Which bootstrap steps have not completed, read from the cluster's Jobs, and what that means for a plan (pure).

A release can be in sync by its digest labels while one of its `after` steps failed: helm wrote the
release, then the step's Job failed. The completed Jobs are the record of what ran, so a component
whose step (at its current digest) has no `Complete` Job is planned again (`upgrade`, reason
`bootstrap_incomplete`); the engine then skips every step already done and resumes at the failed one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from deploy_manager.bootstrap import manifests as m
from deploy_manager.models.desired import DesiredCluster
from deploy_manager.models.plan import ActionKind, Plan, Reason, ReleaseState

MSG_INCOMPLETE = "bootstrap steps not completed at their current digest: {steps}"


def incomplete_steps(desired: DesiredCluster, jobs: list[dict[str, Any]]) -> dict[str, list[str]]:
    """component -> its steps with no `Complete=True` Job carrying the step's digest (declared order)."""
    done: set[tuple[str, str, str]] = set()
    for job in jobs:
        labels = (job.get("metadata") or {}).get("labels") or {}
        if labels.get(m.LABEL_CLUSTER) == desired.name and m.job_complete(job):
            done.add((labels.get(m.LABEL_COMPONENT, ""), labels.get(m.LABEL_STEP, ""), labels.get(m.LABEL_DIGEST, "")))
    out: dict[str, list[str]] = {}
    for name, comp in desired.components.items():
        missing = [s.name for s in comp.bootstrap if (name, s.name, m.digest_label(s.digest)) not in done]
        if missing:
            out[name] = missing
    return out


def with_incomplete_bootstrap(plan: Plan, incomplete: dict[str, list[str]]) -> Plan:
    """Turn `none` (in sync) into `upgrade` for components with incomplete steps; other actions stay."""
    actions = []
    for action in plan.actions:
        steps = incomplete.get(action.component)
        if steps and action.action is ActionKind.none:
            reason = Reason("bootstrap_incomplete", MSG_INCOMPLETE.format(steps=", ".join(steps)), tuple(steps))
            action = replace(
                action, action=ActionKind.upgrade, state=ReleaseState.out_of_sync, reasons=(*action.reasons, reason)
            )
        actions.append(action)
    return replace(plan, actions=tuple(actions))
