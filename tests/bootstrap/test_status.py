"""Incomplete bootstrap steps from the cluster's Jobs, and the plan they change (pure)."""

from __future__ import annotations

from typing import Any

from deploy_manager.bootstrap import manifests as m
from deploy_manager.bootstrap.status import incomplete_steps, with_incomplete_bootstrap
from deploy_manager.models.desired import BootstrapStep, ChartSpec, DesiredCluster, DesiredComponent
from deploy_manager.models.plan import Action, ActionKind, Plan, ReleaseState


def comp(name: str, *steps: tuple[str, str]) -> DesiredComponent:
    return DesiredComponent(
        name=name,
        release=name,
        namespace="os",
        chart=ChartSpec(path=f"charts/{name}"),
        needs=(),
        timeout=60,
        values={},
        values_files=(),
        bootstrap=tuple(BootstrapStep(name=s, script=f"bootstrap/{name}/{s}.sh.j2", digest=d) for s, d in steps),
    )


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


def test_only_in_sync_components_are_upgraded_for_incomplete_steps() -> None:
    plan = Plan(
        cluster="dev",
        commit="c" * 40,
        actions=(
            action("memcached", ActionKind.none),
            action("keystone", ActionKind.none),
            action("nova", ActionKind.blocked),
        ),
    )
    out = with_incomplete_bootstrap(plan, {"keystone": ["register"], "nova": ["db-sync"]})
    kinds = {a.component: a.action for a in out.actions}
    assert kinds == {"memcached": ActionKind.none, "keystone": ActionKind.upgrade, "nova": ActionKind.blocked}
    keystone = out.action_for("keystone")
    assert keystone.state is ReleaseState.out_of_sync
    assert [(r.code, r.paths) for r in keystone.reasons] == [("bootstrap_incomplete", ("register",))]
    assert with_incomplete_bootstrap(plan, {}) == plan
