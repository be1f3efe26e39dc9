"""Plans: state -> action, DAG order, waves, blocked propagation (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

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
    # Another manager holds the cluster Lease: the pending release may be its operation (issue 10).
    plan = make_plan(cluster(), observed, lease_held=False)
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


NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
YOUNG = "2026-01-01T11:59:30.123456789Z"  # 30 s before NOW: within the component's 60 s timeout
OLD = "2026-01-01T11:50:00Z"


@pytest.mark.parametrize(
    ("status", "ours", "updated", "last_deployed", "lease_held", "kind", "codes", "back_to"),
    [
        # Our own pending revision while we hold the Lease: its operation is dead -> roll back, or uninstall.
        ("pending-upgrade", True, YOUNG, 1, True, "unlock", ["locked", "unlock"], "roll back to revision 1"),
        ("pending-rollback", True, YOUNG, 3, True, "unlock", ["locked", "unlock"], "roll back to revision 3"),
        ("pending-install", True, YOUNG, None, True, "unlock", ["locked", "unlock"], "never deployed"),
        # Another manager holds the Lease: it may be writing the release.
        ("pending-upgrade", True, OLD, 1, False, "blocked", ["locked", "locked"], "another manager"),
        # A person's own helm (no labels of ours, or only those merged in from the revision before), younger
        # than the timeout: may still be writing.
        ("pending-upgrade", False, YOUNG, 1, True, "blocked", ["locked", "locked"], "younger than its timeout"),
        ("pending-upgrade", "inherited", YOUNG, 1, True, "blocked", ["locked", "locked"], "younger than its"),
        ("pending-upgrade", False, "", 1, True, "blocked", ["locked", "locked"], "younger than its timeout"),
        # ... older than its timeout: its helm is gone.
        ("pending-upgrade", False, OLD, 1, True, "unlock", ["locked", "unlock"], "roll back to revision 1"),
        ("pending-install", False, "1767268000", None, True, "unlock", ["locked", "unlock"], "never deployed"),
    ],
)
def test_pending_release_is_unlocked_only_when_its_operation_is_dead(
    status: str,
    ours: bool | str,
    updated: str,
    last_deployed: int | None,
    lease_held: bool,
    kind: str,
    codes: list[str],
    back_to: str,
) -> None:
    labels = {"digest": "d-rmq", "chart": "c", "values": "v"} if ours else {}
    observed = {ReleaseId("os", n): deployed(n) for n in NEEDS}
    observed[ReleaseId("os", "rmq")] = deployed(
        "rmq",
        status=status,
        revision=4,
        labels=labels,
        updated=updated,
        last_deployed=last_deployed,
        inherited_labels=ours == "inherited",
    )
    plan = make_plan(cluster(), observed, now=NOW, lease_held=lease_held)
    rmq = plan.action_for("rmq")
    assert rmq.action == kind
    assert [r.code for r in rmq.reasons] == codes
    assert back_to in rmq.reasons[-1].message
    assert rmq.last_deployed == last_deployed and rmq.revision == 4
    assert rmq.writes is (kind == "unlock")
    # A need being unlocked is a need being written: dependents wait for it, they are not blocked.
    assert plan.action_for("ks").action == ("none" if kind == "unlock" else "blocked")
