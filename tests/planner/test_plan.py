"""Plans: state -> action, DAG order, waves, blocked propagation (pure)."""

from __future__ import annotations

from dataclasses import replace

from deploy_manager.models.desired import ChartSpec, DesiredCluster, DesiredComponent
from deploy_manager.models.observed import ObservedRelease, ReleaseId
from deploy_manager.models.plan import ActionKind
from deploy_manager.planner.plan import make_plan

NEEDS = {"rmq": (), "mc": (), "ks": ("rmq", "mc"), "gl": ("ks",), "x": ()}


def cluster() -> DesiredCluster:
    comps = {
        n: DesiredComponent(
            name=n,
            release=n,
            namespace="os",
            chart=ChartSpec(path=f"charts/{n}", digest="c", name=n, chart_version="1"),
            needs=needs,
            timeout=60,
            values={"a": 1},
            values_files=(),
            digest=f"d-{n}",
            values_digest="v",
        )
        for n, needs in NEEDS.items()
    }
    return DesiredCluster(name="dev", commit="f" * 40, namespace="os", components=comps)


def deployed(name: str, **kw: object) -> ObservedRelease:
    base = ObservedRelease(
        namespace="os",
        name=name,
        revision=1,
        status="deployed",
        chart_name=name,
        chart_version="1",
        description="Install complete",
        config={"a": 1},
        labels={"digest": f"d-{name}", "chart": "c", "values": "v"},
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_fresh_cluster_installs_everything_in_dag_order() -> None:
    plan = make_plan(cluster(), {})
    assert [a.component for a in plan.actions] == ["mc", "rmq", "x", "ks", "gl"]
    assert {a.action for a in plan.actions} == {ActionKind.install}
    assert plan.waves == [["mc", "rmq", "x"], ["ks"], ["gl"]]
    assert plan.to_dict()["actions"][0] == {
        "component": "mc",
        "release": "mc",
        "namespace": "os",
        "action": "install",
        "reasons": ["release mc is not installed in os"],
        "reason_details": [{"code": "absent", "message": "release mc is not installed in os"}],
        "state": "absent",
        "needs": [],
        "wave": 0,
        "digest": "d-mc",
    }


def test_all_in_sync_is_all_none() -> None:
    observed = {ReleaseId("os", n): deployed(n) for n in NEEDS}
    plan = make_plan(cluster(), observed)
    assert [a.action for a in plan.actions] == [ActionKind.none] * 5
    assert all(not a.reasons for a in plan.actions)


def test_one_change_one_upgrade() -> None:
    observed = {ReleaseId("os", n): deployed(n) for n in NEEDS}
    observed[ReleaseId("os", "ks")] = deployed("ks", config={"a": 2}, labels={"digest": "old"})
    plan = make_plan(cluster(), observed)
    assert {a.component: a.action for a in plan.actions if a.action is not ActionKind.none} == {
        "ks": ActionKind.upgrade
    }
    assert plan.action_for("ks").reasons[0].paths == ("a",)


def test_locked_release_blocks_dependents_transitively() -> None:
    observed = {ReleaseId("os", n): deployed(n) for n in NEEDS}
    observed[ReleaseId("os", "rmq")] = deployed("rmq", status="pending-upgrade")
    plan = make_plan(cluster(), observed)
    kinds = {a.component: a.action for a in plan.actions}
    assert kinds == {"mc": "none", "rmq": "blocked", "x": "none", "ks": "blocked", "gl": "blocked"}
    assert plan.action_for("gl").reasons[0].message == "needs ks, which is blocked"
    assert plan.action_for("rmq").reasons[0].code == "locked"


def test_failed_release_is_retried() -> None:
    observed = {ReleaseId("os", n): deployed(n) for n in NEEDS}
    observed[ReleaseId("os", "x")] = deployed("x", status="failed", description="timed out waiting")
    plan = make_plan(cluster(), observed)
    act = plan.action_for("x")
    assert act.action is ActionKind.upgrade and act.reasons[0].message.startswith("last attempt failed (revision 1)")
