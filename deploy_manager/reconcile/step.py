"""The contract of a step kind, and what every step of one run shares.

A step kind is a function `(action, ctx) -> StepRecord` in its own module (`upgrade.py` for install and
upgrade; the next kinds, e.g. unlock, rollback, uninstall, go beside it) registered for its `ActionKind`
in `executor.STEP_KINDS`. A step kind:

- acts only on what the plan decided (the `Action`, with its reasons and bootstrap steps) and the run's
  snapshot (`RunContext`): it does not re-read or re-plan;
- never writes to the store: it returns its `StepRecord`, and reports sub-steps (bootstrap Jobs) through
  `ctx.emit`, which the run owner records;
- never raises for a failure of its own work: a failure is a `failed` StepRecord (the executor then
  blocks the dependents).

A remediation step (`rollback`, `uninstall`) is always `failed`: it stands for the component, whose write
failed; its reason (`rolled_back`, `uninstalled`) says what was done and to which revision, and its error
what failed (and, if so, why the remediation failed too).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from deploy_manager.clock import now
from deploy_manager.helm.runner import HelmRunner
from deploy_manager.kube.client import KubeClient
from deploy_manager.kube.types import Job
from deploy_manager.models.desired import DesiredCluster
from deploy_manager.models.plan import Action, ActionKind, Plan, Reason
from deploy_manager.models.run import StepRecord, StepStatus
from deploy_manager.models.smoke import CheckOutcome, SmokeCheck
from deploy_manager.planner.drift import DriftItem
from deploy_manager.reconcile.cancel import RunCancel
from deploy_manager.reconcile.hooks import ComponentHook

# Reasons and errors a step records (stable strings: the API and the status page show them).
MSG_NEED_FAILED = "needs {need}, which {verb}"
MSG_ROLLED_BACK = "rolled back from revision {frm} to revision {to} (now revision {new})"
MSG_UNINSTALLED = "uninstalled after revision {frm} failed"
MSG_UNLOCKED = "revision {frm} was left pending by an operation that is not running: {what}"
MSG_RETRIED = "attempt {n} failed, retried: {error}"
MSG_CHECK_FAILED = "waits for check {check}, which {verb}"


def _ignore(step: StepRecord) -> None:
    return None


@dataclass(frozen=True)
class RunContext:
    """What every step of one run shares: read once by the run owner, never changed by a step."""

    helm: HelmRunner
    cluster: DesiredCluster
    charts: dict[str, str]  # component -> chart dir (local) or chart ref (remote), from the pre-flight
    run_id: int | None = None
    hook: ComponentHook | None = None  # runs around each write: the bootstrap engine
    jobs: tuple[Job, ...] = ()  # the snapshot's bootstrap Jobs (every component of the cluster)
    emit: Callable[[StepRecord], None] = field(default=_ignore)  # the run owner's recorder
    cancel: RunCancel | None = None  # the queue's way to stop the run early (shutdown, superseded)
    kube: KubeClient | None = None  # for step kinds that write objects themselves (prune's Jobs, correct_drift)
    smoke: CheckRunner | None = None  # runs the workflow checks (issue 14); None: no check runs
    plan: Plan | None = None  # the plan being executed (the `smoke` step kind remediates what it wrote)
    # component -> its drifted objects, read in the snapshot for `mode: correct` components (correct_drift)
    drift: Mapping[str, tuple[DriftItem, ...]] = field(default_factory=dict)


class CheckRunner(Protocol):
    """Runs one workflow check (issue 14; `bootstrap.smoke.SmokeJobs`)."""

    def __call__(self, check: SmokeCheck, cluster: DesiredCluster, run_id: int | None) -> CheckOutcome: ...


class StepKind(Protocol):
    def __call__(self, action: Action, ctx: RunContext) -> StepRecord: ...


def action_step(
    action: Action,
    kind: ActionKind,
    status: StepStatus,
    *,
    started: str,
    t0: float,
    reasons: tuple[Reason, ...] = (),
    helm_revision: int | None = None,
    exit_code: int | None = None,
    output_tail: str = "",
    error: str = "",
    temporary: bool = False,
) -> StepRecord:
    """The step of a step kind acting on `action`'s release, begun at `started` (monotonic `t0`), ending now."""
    return StepRecord(
        component=action.component,
        release=action.release,
        namespace=action.namespace,
        action=kind.value,
        status=status,
        reasons=reasons,
        helm_revision=helm_revision,
        duration=time.monotonic() - t0,
        exit_code=exit_code,
        output_tail=output_tail,
        error=error,
        started_at=started,
        finished_at=now(),
        temporary=temporary,
    )
