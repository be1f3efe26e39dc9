"""Bootstrap steps, decided from the cluster's Jobs (pure): what each step needs and what that does to a plan.

The completed Jobs are the record of what ran. `step_state` reads one step's Jobs (those carrying the
step's label) and answers done | running | failed | new | always; the engine (deploy_manager.bootstrap)
only acts on that answer.

A release can be in sync by its digest labels while one of its `after` steps failed: helm wrote the
release, then the step's Job failed. So a component whose step (at its current digest) has no `Complete`
Job is planned again (`upgrade`, reason `bootstrap_incomplete`); the engine then skips every step already
done and resumes at the failed one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from deploy_manager.bootstrap import manifests as m
from deploy_manager.kube.types import Job
from deploy_manager.models.desired import BootstrapStep, DesiredCluster
from deploy_manager.models.plan import ActionKind, BootstrapStepPlan, Plan, Reason, ReleaseState, StepState

MSG_INCOMPLETE = "bootstrap steps not completed at their current digest: {steps}"


def _labels(job: Job) -> dict[str, str]:
    return dict((job.get("metadata") or {}).get("labels") or {})


def _name(job: Job) -> str:
    return str((job.get("metadata") or {}).get("name") or "")


def step_jobs(jobs: Iterable[Job], cluster: str, component: str, step: str) -> list[Job]:
    """The Jobs of one step of one component (any digest), as listed."""
    out = []
    for job in jobs:
        labels = _labels(job)
        if (labels.get(m.LABEL_CLUSTER), labels.get(m.LABEL_COMPONENT), labels.get(m.LABEL_STEP)) == (
            cluster,
            component,
            step,
        ):
            out.append(job)
    return out


def step_state(step: BootstrapStep, jobs: Sequence[Job]) -> tuple[StepState, str]:
    """The state of `step` from its Jobs (any digest) and the Job that state was read from ("" if none).

    Precedence: `always` > a completed Job with the digest (done) > one still running (wait for it) > a
    failed one (run again) > none (new).
    """
    if step.always:
        return StepState.always, ""
    same = [j for j in jobs if _labels(j).get(m.LABEL_DIGEST) == m.digest_label(step.digest)]
    done = [j for j in same if m.job_complete(j)]
    if done:
        return StepState.done, _name(max(done, key=m.creation_key))
    running = [j for j in same if not m.job_finished(j)]
    if running:
        return StepState.running, _name(running[0])
    failed = [j for j in same if m.job_failed(j)]
    if failed:
        return StepState.failed, _name(failed[0])
    return StepState.new, ""


def incomplete_steps(desired: DesiredCluster, jobs: list[Job]) -> dict[str, list[str]]:
    """component -> its steps with no `Complete=True` Job carrying the step's digest (declared order)."""
    done: set[tuple[str, str, str]] = set()
    for job in jobs:
        labels = _labels(job)
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


def plan_bootstrap(desired: DesiredCluster, plan: Plan, jobs: list[Job]) -> Plan:
    """`plan` with each component's bootstrap steps (their states from `jobs`) and in-sync components whose
    steps have not all completed planned again."""
    plan = with_incomplete_bootstrap(plan, incomplete_steps(desired, jobs))
    actions = []
    for action in plan.actions:
        comp = desired.components.get(action.component)
        if comp is not None and comp.bootstrap:
            steps = []
            for step in comp.bootstrap:
                state, job = step_state(step, step_jobs(jobs, desired.name, comp.name, step.name))
                steps.append(BootstrapStepPlan(step=step.name, when=step.when, state=state, job=job))
            action = replace(action, bootstrap=tuple(steps))
        actions.append(action)
    return replace(plan, actions=tuple(actions))
