"""Incomplete bootstrap steps from the cluster's Jobs, and the plan they change (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from deploy_manager.bootstrap import manifests as m
from deploy_manager.models.desired import BootstrapStep, DesiredCluster, DesiredComponent
from deploy_manager.models.plan import Action, ActionKind, Plan, ReleaseState, StepState
from deploy_manager.planner.bootstrap import incomplete_steps, plan_bootstrap, step_state, with_incomplete_bootstrap
from tests.corelib import desired_component


def comp(name: str, *steps: tuple[str, str]) -> DesiredComponent:
    bootstrap = tuple(BootstrapStep(name=s, script=f"bootstrap/{name}/{s}.sh.j2", digest=d) for s, d in steps)
    return desired_component(name, bootstrap=bootstrap)


DESIRED = DesiredCluster(
    name="dev",
    commit="c" * 40,
    namespace="os",
    components={
        "keystone": comp("keystone", ("db-sync", "a" * 64), ("register", "b" * 64)),
        "memcached": comp("memcached"),
        "nova": comp("nova", ("db-sync", "c" * 64)),
    },
)


def job(component: str, step: str, digest: str, condition: str | None, cluster: str = "dev") -> dict[str, Any]:
    labels = {m.LABEL_CLUSTER: cluster, m.LABEL_COMPONENT: component, m.LABEL_STEP: step}
    labels[m.LABEL_DIGEST] = m.digest_label(digest)
    conditions = [{"type": condition, "status": "True"}] if condition else []
    return {"metadata": {"labels": labels}, "status": {"conditions": conditions}}


def test_incomplete_steps_need_a_complete_job_with_the_current_digest() -> None:
    jobs = [
        job("keystone", "db-sync", "a" * 64, "Complete"),
        job("keystone", "register", "b" * 64, "Failed"),  # failed: not done
        job("nova", "db-sync", "0" * 64, "Complete"),  # an older digest: not done
        job("nova", "db-sync", "c" * 64, "Complete", cluster="other"),  # another cluster's Job
    ]
    assert incomplete_steps(DESIRED, jobs) == {"keystone": ["register"], "nova": ["db-sync"]}
    assert incomplete_steps(DESIRED, jobs + [job("nova", "db-sync", "c" * 64, "Complete")]) == {
        "keystone": ["register"]
    }


def action(name: str, kind: ActionKind) -> Action:
    return Action(component=name, release=name, namespace="os", action=kind, state=ReleaseState.in_sync)


def plan_with_nova(nova: ActionKind) -> Plan:
    """DESIRED's plan: memcached and keystone in sync (no action), nova's action `nova`."""
    actions = (action("memcached", ActionKind.none), action("keystone", ActionKind.none), action("nova", nova))
    return Plan(cluster="dev", commit="c" * 40, actions=actions)


def test_only_in_sync_components_are_upgraded_for_incomplete_steps() -> None:
    plan = plan_with_nova(ActionKind.blocked)
    out = with_incomplete_bootstrap(plan, {"keystone": ["register"], "nova": ["db-sync"]})
    kinds = {a.component: a.action for a in out.actions}
    assert kinds == {"memcached": ActionKind.none, "keystone": ActionKind.upgrade, "nova": ActionKind.blocked}
    keystone = out.action_for("keystone")
    assert keystone.state is ReleaseState.out_of_sync
    assert [(r.code, r.paths) for r in keystone.reasons] == [("bootstrap_incomplete", ("register",))]
    assert with_incomplete_bootstrap(plan, {}) == plan


def named(name: str, created: str, digest: str, condition: str | None) -> dict[str, Any]:
    out = job("nova", "db-sync", digest, condition)
    out["metadata"].update(name=name, creationTimestamp=created)
    return out


STEP = BootstrapStep(name="db-sync", script="bootstrap/nova/db-sync.sh.j2", digest="c" * 64)
ALWAYS = BootstrapStep(name="db-sync", script="bootstrap/nova/db-sync.sh.j2", digest="c" * 64, always=True)


@pytest.mark.parametrize(
    ("step", "jobs", "expected"),
    [
        (STEP, [], (StepState.new, "")),
        (STEP, [named("old", "t1", "0" * 64, "Complete")], (StepState.new, "")),  # another digest: not this step
        (STEP, [named("j", "t1", "c" * 64, "Complete")], (StepState.done, "j")),
        (STEP, [named("j", "t1", "c" * 64, None)], (StepState.running, "j")),
        (STEP, [named("j", "t1", "c" * 64, "Failed")], (StepState.failed, "j")),
        # A completed Job wins over a failed or running one with the same digest; the newest completed one names it.
        (
            STEP,
            [
                named("f", "t1", "c" * 64, "Failed"),
                named("a", "t2", "c" * 64, "Complete"),
                named("b", "t3", "c" * 64, "Complete"),
            ],
            (StepState.done, "b"),
        ),
        (STEP, [named("f", "t1", "c" * 64, "Failed"), named("r", "t2", "c" * 64, None)], (StepState.running, "r")),
        (ALWAYS, [named("j", "t1", "c" * 64, "Complete")], (StepState.always, "")),
        (ALWAYS, [], (StepState.always, "")),
    ],
)
def test_step_state(step: BootstrapStep, jobs: list[dict[str, Any]], expected: tuple[StepState, str]) -> None:
    assert step_state(step, jobs) == expected


def test_the_plan_carries_each_components_bootstrap_steps() -> None:
    plan = plan_with_nova(ActionKind.install)
    jobs = [named("ks-db", "t1", "a" * 64, "Complete")]
    jobs[0]["metadata"]["labels"][m.LABEL_COMPONENT] = "keystone"
    out = plan_bootstrap(DESIRED, plan, jobs)
    steps = {a.component: [(s.step, s.state, s.job) for s in a.bootstrap] for a in out.actions}
    assert steps == {
        "memcached": [],
        "keystone": [("db-sync", StepState.done, "ks-db"), ("register", StepState.new, "")],
        "nova": [("db-sync", StepState.new, "")],
    }
    assert out.action_for("keystone").action is ActionKind.upgrade  # `register` never completed
    assert out.action_for("keystone").to_dict()["bootstrap"][0] == {
        "step": "db-sync",
        "when": "before",
        "state": "done",
        "job": "ks-db",
    }
    assert "bootstrap" not in out.action_for("memcached").to_dict()
