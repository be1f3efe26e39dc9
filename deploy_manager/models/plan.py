"""A plan: ordered actions with machine-readable reasons."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class ReleaseState(enum.StrEnum):
    absent = "absent"
    in_sync = "in-sync"
    out_of_sync = "out-of-sync"
    drifted = "drifted"  # changed behind our back (rollback, manual upgrade, not ours)
    failed = "failed"
    locked = "locked"  # pending-install/upgrade/rollback: another operation is (or was) in progress
    # Issue 13: frozen by `suspend` (CLI/API ConfigMap or cluster.yaml): planned `none`, never written.
    suspended = "suspended"
    # Issue 13: our release (cluster label) of a component no longer in cluster.yaml: `none`, or `uninstall`
    # when the cluster sets `prune: true`.
    orphaned = "orphaned"


class ActionKind(enum.StrEnum):
    install = "install"
    upgrade = "upgrade"
    none = "none"
    blocked = "blocked"
    # Recovery (issue 10): free a release left pending by a dead operation, then install/upgrade it.
    unlock = "unlock"
    # Remediation of a failed install/upgrade (recorded as steps; the planner never chooses them).
    rollback = "rollback"
    uninstall = "uninstall"
    # A workflow check (issue 14) that gates its components' dependents or runs at the end of the run.
    smoke = "smoke"
    # Drift (issue 13): re-apply the release's manifest for live objects that differ (no helm revision).
    correct_drift = "correct_drift"


# Step actions that undo a failed write: the component counts as failed even when they succeed.
REMEDIATIONS = (ActionKind.rollback, ActionKind.uninstall)


@dataclass(frozen=True)
class Reason:
    code: str
    message: str
    paths: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.paths:
            out["paths"] = list(self.paths)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reason:
        return cls(code=str(data["code"]), message=str(data["message"]), paths=tuple(data.get("paths", ())))


class StepState(enum.StrEnum):
    """What the cluster's Jobs say about one bootstrap step at its current digest (planner/bootstrap.py)."""

    done = "done"  # a Job with this digest completed: skip it
    running = "running"  # a Job with this digest is still running (a run died mid-step): wait for it
    failed = "failed"  # a Job with this digest failed: delete it and run the step again
    new = "new"  # no Job with this digest: run the step
    always = "always"  # `always: true`: run it on every write of the component


@dataclass(frozen=True)
class BootstrapStepPlan:
    """One bootstrap step the plan will run (or skip) around its component's helm write."""

    step: str
    when: str  # before | after
    state: StepState
    job: str = ""  # the Job the state was read from (done/running/failed), if any

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "when": self.when, "state": self.state.value, "job": self.job}


@dataclass(frozen=True)
class Action:
    component: str
    release: str
    namespace: str
    action: ActionKind
    reasons: tuple[Reason, ...] = ()
    state: ReleaseState = ReleaseState.absent
    needs: tuple[str, ...] = ()
    wave: int = 0
    digest: str = ""
    revision: int | None = None  # the newest revision the plan saw
    # The revision to go back to (unlock, remediation): the newest `deployed` one; None: it never deployed.
    last_deployed: int | None = None
    bootstrap: tuple[BootstrapStepPlan, ...] = ()  # the component's bootstrap steps, as the Jobs show them

    @property
    def writes(self) -> bool:
        return self.action in (ActionKind.install, ActionKind.upgrade, ActionKind.unlock)

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "release": self.release,
            "namespace": self.namespace,
            "action": self.action.value,
            # Public JSON (issue 4): `reasons` are the human-readable messages; the codes and paths follow.
            "reasons": [r.message for r in self.reasons],
            "reason_details": [r.to_dict() for r in self.reasons],
            "state": self.state.value,
            "needs": list(self.needs),
            "wave": self.wave,
            "digest": self.digest,
            **({"bootstrap": [s.to_dict() for s in self.bootstrap]} if self.bootstrap else {}),
        }


@dataclass(frozen=True)
class Plan:
    cluster: str
    commit: str
    actions: tuple[Action, ...] = field(default_factory=tuple)

    def action_for(self, component: str) -> Action:
        for a in self.actions:
            if a.component == component:
                return a
        raise KeyError(component)

    @property
    def waves(self) -> list[list[str]]:
        out: dict[int, list[str]] = {}
        for a in self.actions:
            out.setdefault(a.wave, []).append(a.component)
        return [out[k] for k in sorted(out)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "commit": self.commit,
            "actions": [a.to_dict() for a in self.actions],
            "waves": self.waves,
        }
