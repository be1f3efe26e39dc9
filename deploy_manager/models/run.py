"""Run history records and the per-release status the service serves at /releases."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from deploy_manager.models.plan import Reason


class RunStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    interrupted = "interrupted"
    superseded = "superseded"  # stopped early for a newer commit that changes what it was waiting on
    # The manager wrote its own release (without waiting on itself) as the run's last write: the new pod verifies
    # that release at start-up and finishes the run (issue 15).
    handed_over = "handed_over"
    degraded = "degraded"  # every component written, but a workflow check at the end did not pass (issue 14)


class StepStatus(enum.StrEnum):
    succeeded = "succeeded"
    failed = "failed"
    blocked = "blocked"
    skipped = "skipped"  # action none: nothing to do


@dataclass(frozen=True)
class StepRecord:
    component: str
    release: str
    namespace: str
    action: str
    status: StepStatus
    reasons: tuple[Reason, ...] = ()
    helm_revision: int | None = None
    duration: float = 0.0
    exit_code: int | None = None
    output_tail: str = ""
    error: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    # The failure was temporary (the API's 5xx/429, a dropped connection): a later retry may succeed.
    # Known to the run that made the step (the service's retry policy reads it); not stored.
    temporary: bool = field(default=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "release": self.release,
            "namespace": self.namespace,
            "action": self.action,
            "status": self.status.value,
            # Same shape as a plan action's: messages in `reasons`, code/message/paths in `reason_details`.
            "reasons": [r.message for r in self.reasons],
            "reason_details": [r.to_dict() for r in self.reasons],
            "helm_revision": self.helm_revision,
            "duration": round(self.duration, 3),
            "exit_code": self.exit_code,
            "output_tail": self.output_tail,
            "error": self.error,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


@dataclass(frozen=True)
class RunRecord:
    id: int
    cluster: str
    commit: str | None
    trigger: str
    status: RunStatus
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    error: str = ""
    steps: tuple[StepRecord, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "cluster": self.cluster,
            "commit": self.commit,
            "trigger": self.trigger,
            "status": self.status.value,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "steps": [s.to_dict() for s in self.steps],
        }


@dataclass(frozen=True)
class ReleaseStatus:
    """One deployed release as seen in the cluster, tied back to its component."""

    component: str
    release: str
    namespace: str
    chart: str
    chart_version: str
    revision: int
    status: str
    # The values-repo commit the release is at: the observed desired commit when the plan has nothing to do
    # for it (in sync, so a push that changes nothing for it still moves it on), else `deployed_commit`.
    commit: str | None
    digest: str | None
    # The plan's verdict for it at the observed commit: in-sync, out-of-sync, drifted, …
    state: str = ""
    updated: str = ""
    # The commit recorded on the release (its label) when helm last wrote it.
    deployed_commit: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "release": self.release,
            "namespace": self.namespace,
            "chart": self.chart,
            "chart_version": self.chart_version,
            "revision": self.revision,
            "status": self.status,
            "commit": self.commit,
            "digest": self.digest,
            "state": self.state,
            "updated": self.updated,
            "deployed_commit": self.deployed_commit,
        }
