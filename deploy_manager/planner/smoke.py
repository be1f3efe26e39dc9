"""Which workflow checks run, where in a run, and what a check's outcome means (pure; issue 14).

- `selected(checks, written, mode)`: `DM_SMOKE_AFTER_RUN` — `changed` (default): the checks whose component or
  a gate the run writes; `all`; `none`.
- `gate_plan(plan, checks, mode)`: a selected check with a gate the run writes becomes a node of the plan
  (`smoke:<check>`, action `smoke`) that needs its gates; every component that needs one of those gates also
  needs the check, so it starts only after the check passed (or is blocked naming it).
- `end_actions(...)`: the other selected checks run once the components are settled; one whose component or
  gate failed or was blocked is recorded blocked instead.
- `verdict(...)`: passed | failed | slow | error from the Job's result, its duration and the SLA.
- `targets(...)`: what a failed check remediates: a gate check its written gates (as each component's
  `remediation` says), an ungated check with `on_failure: rollback` the written components it names.
- `run_status(...)`: a run whose components all succeeded but whose end checks did not pass is `degraded`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from deploy_manager.models.plan import Action, ActionKind, Plan, Reason
from deploy_manager.models.run import RunStatus, StepRecord, StepStatus
from deploy_manager.models.smoke import NODE_PREFIX, AfterRun, SmokeCheck, SmokeStatus

MSG_GATE = "gates {gates}: runs before their dependents start"
MSG_END = "runs after the run's components"
MSG_CHECK_BLOCKED = "{name} {verb}"
MSG_SLOW = "passed in {duration:.1f}s, slower than its SLA of {sla:g}s"
MSG_PASSED = "passed in {duration:.1f}s"


def written_components(plan: Plan) -> set[str]:
    return {a.component for a in plan.actions if a.writes}


def selected(checks: Iterable[SmokeCheck], written: set[str], mode: AfterRun) -> list[SmokeCheck]:
    if mode is AfterRun.none:
        return []
    if mode is AfterRun.all:
        return list(checks)
    return [c for c in checks if any(n in written for n in c.names)]


def is_gate(check: SmokeCheck, written: set[str]) -> bool:
    """A check gates this run when one of its gates is written by it."""
    return any(g in written for g in check.gates)


def gate_plan(plan: Plan, checks: Iterable[SmokeCheck], mode: AfterRun) -> Plan:
    """The plan with its gate checks as nodes (see the module docstring); unchanged when none gates."""
    written = written_components(plan)
    present = {a.component for a in plan.actions}
    gates = [c for c in selected(checks, written, mode) if is_gate(c, written)]
    if not gates:
        return plan
    by_gate: dict[str, list[str]] = {}
    for check in gates:
        for g in check.gates:
            by_gate.setdefault(g, []).append(check.node)
    actions: list[Action] = []
    for action in plan.actions:
        extra = tuple(node for need in action.needs for node in by_gate.get(need, ()) if node not in action.needs)
        actions.append(replace(action, needs=action.needs + tuple(dict.fromkeys(extra))) if extra else action)
    for check in gates:
        comp = plan.action_for(check.component) if check.component in present else None
        needs = tuple(g for g in check.gates if g in present)
        actions.append(
            Action(
                component=check.node,
                release=comp.release if comp else "",
                namespace=comp.namespace if comp else "",
                action=ActionKind.smoke,
                reasons=(Reason("smoke_gate", MSG_GATE.format(gates=", ".join(check.gates))),),
                needs=needs,
                wave=1 + max((plan.action_for(g).wave for g in needs), default=0),
            )
        )
    return replace(plan, actions=tuple(actions))


def end_actions(
    plan: Plan,
    checks: Iterable[SmokeCheck],
    mode: AfterRun,
    outcome: Mapping[str, StepStatus],
) -> tuple[Action, ...]:
    """The checks that run at the end of a run (`outcome`: each component's result), as actions: `smoke`, or
    `blocked` naming a component of the check that failed or was blocked."""
    written = written_components(plan)
    present = {a.component: a for a in plan.actions}
    out: list[Action] = []
    for check in selected(checks, written, mode):
        if is_gate(check, written):
            continue
        comp = present.get(check.component)
        bad = [n for n in check.names if outcome.get(n) in (StepStatus.failed, StepStatus.blocked)]
        reasons = tuple(
            Reason(
                "need_failed",
                MSG_CHECK_BLOCKED.format(name=n, verb="failed" if outcome[n] is StepStatus.failed else "is blocked"),
            )
            for n in bad
        ) or (Reason("smoke_end", MSG_END),)
        out.append(
            Action(
                component=check.node,
                release=comp.release if comp else "",
                namespace=comp.namespace if comp else "",
                action=ActionKind.blocked if bad else ActionKind.smoke,
                reasons=reasons,
            )
        )
    return tuple(out)


def verdict(ok: bool | None, duration: float, sla: float | None) -> SmokeStatus:
    """`ok` None: the check could not be run (error); False: it failed or timed out; a pass over the SLA is slow."""
    if ok is None:
        return SmokeStatus.error
    if not ok:
        return SmokeStatus.failed
    if sla is not None and duration > sla:
        return SmokeStatus.slow
    return SmokeStatus.passed


def targets(check: SmokeCheck, written: set[str], *, gate: bool) -> tuple[str, ...]:
    """The components a failed check remediates (in the check's order)."""
    if gate:
        return tuple(g for g in check.gates if g in written)
    if check.on_failure == "rollback":
        return tuple(n for n in check.names if n in written)
    return ()


def run_status(components: RunStatus, checks: Iterable[SmokeStatus | None]) -> RunStatus:
    """The run's status once its end checks ran: `degraded` when the components succeeded but a check did not
    pass (a blocked check, None, cannot happen then: its component succeeded)."""
    if components is RunStatus.succeeded and any(s is not None and not s.ok for s in checks):
        return RunStatus.degraded
    return components


def counts(statuses: Iterable[SmokeStatus]) -> dict[str, int]:
    out = {s.value: 0 for s in SmokeStatus}
    for s in statuses:
        out[s.value] += 1
    return out


def summary(statuses: Mapping[str, SmokeStatus]) -> str:
    """ "6 checks passed" or "2 of 6 checks failed: token-issue, server-boot (slow)"."""
    total = len(statuses)
    if not total:
        return ""
    bad = [f"{n}{'' if s is SmokeStatus.failed else f' ({s.value})'}" for n, s in statuses.items() if not s.ok]
    noun = "check" if total == 1 else "checks"
    if not bad:
        return f"{total} {noun} passed"
    return f"{len(bad)} of {total} {noun} failed: {', '.join(bad)}"


def due(checks: Iterable[SmokeCheck], last: Mapping[str, float], now: float) -> list[SmokeCheck]:
    """Scheduled checks whose interval has passed since they last finished (never run: due)."""
    return [c for c in checks if c.schedule and now - last.get(c.name, float("-inf")) >= c.schedule]


def check_record(step: StepRecord, checks: Iterable[SmokeCheck]) -> StepRecord:
    """A step the executor recorded for a check's node (`smoke:<check>`: blocked, or not started) as the run
    records every check: component = the check's component, action `smoke:<check>`."""
    if not step.component.startswith(NODE_PREFIX):
        return step
    name = step.component.removeprefix(NODE_PREFIX)
    for check in checks:
        if check.name == name:
            return replace(step, component=check.component, action=check.action)
    return step
