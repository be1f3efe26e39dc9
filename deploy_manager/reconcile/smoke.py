"""Step kind `smoke`: one workflow check of a run (issue 14), through `RunContext.smoke` (the Job runner).

The planner put the check where it belongs (`planner.smoke`): right after its gates (their dependents need it)
or at the end of the run. This runs it, judges it (`planner.smoke.verdict`: passed | failed | slow | error)
and returns its step: component = the check's component, action `smoke:<check>`, the check status as the first
reason (`smoke_<status>`), the Job's log tail (secrets redacted) as the output tail.

A check that did not pass remediates (`planner.smoke.targets`): a gate check the gates the run wrote, as each
component's `remediation` says (rollback by default; a first install is uninstalled); an ungated check with
`on_failure: rollback` the components the run wrote that it names. Each remediation is its own step (through
`ctx.emit`, before the check's step); the check's step is `failed`, so the dependents are blocked naming it.
"""

from __future__ import annotations

import contextlib
import time

from deploy_manager.clock import now
from deploy_manager.logging_setup import log_context
from deploy_manager.models.plan import Action, ActionKind, Reason
from deploy_manager.models.run import StepRecord, StepStatus
from deploy_manager.models.smoke import NODE_PREFIX, CheckOutcome, SmokeCheck, SmokeStatus, status_reason
from deploy_manager.planner.remediation import remediation_for
from deploy_manager.planner.smoke import MSG_PASSED, MSG_SLOW, is_gate, targets, verdict, written_components
from deploy_manager.reconcile.rollback import rollback
from deploy_manager.reconcile.step import RunContext
from deploy_manager.reconcile.uninstall import uninstall

MSG_CHECK = "check {name} {status}"
MSG_NOT_RUN = "could not run: {message}"
MSG_FAILED = "failed: {message}"


def find_check(ctx: RunContext, node: str) -> SmokeCheck:
    name = node.removeprefix(NODE_PREFIX)
    for check in ctx.cluster.smoke:
        if check.name == name:
            return check
    raise KeyError(name)


def check_step(check: SmokeCheck, status: SmokeStatus, result: CheckOutcome, extra: tuple[Reason, ...]) -> StepRecord:
    if status is SmokeStatus.passed:
        message = MSG_PASSED.format(duration=result.duration)
    elif status is SmokeStatus.slow:
        message = MSG_SLOW.format(duration=result.duration, sla=check.sla or 0)
    elif status is SmokeStatus.error:
        message = MSG_NOT_RUN.format(message=result.message)
    else:
        message = MSG_FAILED.format(message=result.message)
    job = f" (Job {result.namespace}/{result.job})" if result.job else ""
    return StepRecord(
        component=check.component,
        release="",
        namespace=result.namespace,
        action=check.action,
        status=StepStatus.succeeded if status.ok else StepStatus.failed,
        reasons=(status_reason(status, message + job), *extra),
        duration=result.duration,
        exit_code=result.exit_code,
        output_tail=result.log_tail,
        error="" if status.ok else f"check {check.name} {status.value}: {message}{job}",
        started_at=result.started_at,
        finished_at=result.finished_at,
    )


def smoke(action: Action, ctx: RunContext) -> StepRecord:
    """Run the check of `action` (node `smoke:<check>`); remediate on failure (see the module docstring)."""
    check = find_check(ctx, action.component)
    comp = ctx.cluster.components[check.component]
    with log_context(component=comp.name, release=comp.release):
        if ctx.smoke is None:  # wired without a runner: say so rather than pass silently
            result = CheckOutcome(None, 0.0, "no check runner is configured", started_at=now(), finished_at=now())
        elif ctx.cancel is not None and ctx.cancel.stopped:  # a stopped run starts no check, and remediates nothing
            ts = now()
            result = CheckOutcome(None, 0.0, f"not started: {ctx.cancel.reason}", started_at=ts, finished_at=ts)
            return check_step(check, SmokeStatus.error, result, action.reasons)
        else:
            t0 = time.monotonic()
            try:
                with contextlib.ExitStack() as live:
                    if ctx.cancel is not None:  # the status page's live progress: which check is running
                        live.enter_context(ctx.cancel.activity(comp.name, f"check {check.name}"))
                    result = ctx.smoke(check, ctx.cluster, ctx.run_id)
            except Exception as exc:  # a runner bug must fail this check, not the run
                result = CheckOutcome(None, time.monotonic() - t0, f"{type(exc).__name__}: {exc}")
        status = verdict(result.ok, result.duration, check.sla)
        step = check_step(check, status, result, action.reasons)
        if status.ok or ctx.plan is None:
            return step
        written = written_components(ctx.plan)
        cause = f"check {check.name} {status.value}"
        for name in targets(check, written, gate=is_gate(check, written)):
            ctx.emit(remediate(ctx, name, cause, gate=is_gate(check, written)))
        return step


def remediate(ctx: RunContext, component: str, cause: str, *, gate: bool) -> StepRecord:
    """Undo the run's write of `component` after its check failed: a gate by the component's remediation,
    an ungated check's `on_failure: rollback` by a rollback (nothing to roll back to: left as it is)."""
    assert ctx.plan is not None
    action = ctx.plan.action_for(component)
    comp = ctx.cluster.components[component]
    kind = remediation_for(comp.remediation.on_failure if gate else "rollback", action.last_deployed)
    if not gate and kind is not ActionKind.rollback:
        kind = None
    current = ctx.helm.status(comp.release, comp.namespace) or {}
    revision = current.get("version")
    failed_revision = int(revision) if isinstance(revision, int) else None
    ts = now()
    if kind is None:
        return StepRecord(
            component=component,
            release=action.release,
            namespace=action.namespace,
            action=ActionKind.rollback.value,
            status=StepStatus.failed,
            reasons=(Reason("not_remediated", f"{cause}: nothing to roll back to, or remediation is none"),),
            helm_revision=failed_revision,
            error=cause,
            started_at=ts,
            finished_at=ts,
        )
    if kind is ActionKind.rollback:
        return rollback(action, ctx, failed_revision=failed_revision, cause=cause)
    return uninstall(action, ctx, failed_revision=failed_revision, cause=cause)
