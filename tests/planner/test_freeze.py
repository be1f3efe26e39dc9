"""Suspend and prune in the plan (issue 13), pure: tables of desired x observed x suspensions -> actions."""

from __future__ import annotations

from dataclasses import replace

import pytest

from deploy_manager.models.desired import DesiredCluster
from deploy_manager.models.observed import ObservedRelease, ReleaseId
from deploy_manager.models.plan import ActionKind, ReleaseState
from deploy_manager.models.suspend import Suspension, Suspensions
from deploy_manager.planner.freeze import MSG_NEED_SUSPENDED, plan_orphans
from deploy_manager.planner.plan import make_plan
from tests.planner.test_plan import cluster, deployed

# NEEDS (test_plan): rmq, mc -> ks -> gl; x alone.
ALL = ("rmq", "mc", "ks", "gl", "x")


def observed(*changed: str, absent: tuple[str, ...] = ()) -> dict[ReleaseId, ObservedRelease]:
    """Everything deployed and in sync, except `changed` (an older digest: out of sync) and `absent`."""
    out = {}
    for name in ALL:
        if name in absent:
            continue
        obs = deployed(name)
        if name in changed:
            obs = replace(obs, labels={**obs.labels, "digest": "old"})
        out[ReleaseId("os", name)] = obs
    return out


def by_api(*components: str | None, reason: str = "incident 42") -> Suspensions:
    found = Suspensions()
    for c in components:
        found = found.with_suspension(Suspension(c, by="api", reason=reason, at="2026-11-28T10:00:00+00:00"))
    return found


def summary(plan: object) -> dict[str, tuple[str, str]]:
    return {a.component: (a.action.value, a.state.value) for a in plan.actions}  # type: ignore[attr-defined]


CASES = [
    # (what changed, absent, suspended via ConfigMap, cluster.yaml suspended components, expected subset)
    pytest.param(
        ("ks", "gl"),
        (),
        ("ks",),
        (),
        {"ks": ("none", "suspended"), "gl": ("blocked", "out-of-sync")},
        id="a suspended need with a change pending blocks a dependent that writes",
    ),
    pytest.param(
        ("gl",),
        (),
        ("ks",),
        (),
        {"ks": ("none", "suspended"), "gl": ("upgrade", "out-of-sync")},
        id="a suspended need without a change does not block its dependent",
    ),
    pytest.param(
        ("ks",),
        (),
        ("ks",),
        (),
        {"ks": ("none", "suspended"), "gl": ("none", "in-sync")},
        id="a dependent whose own action is none goes ahead (none, not blocked)",
    ),
    pytest.param(
        ("ks", "gl", "x"),
        (),
        ("ks",),
        (),
        {"x": ("upgrade", "out-of-sync"), "gl": ("blocked", "out-of-sync")},
        id="independent components deploy while one is suspended",
    ),
    pytest.param(
        ("ks", "gl"),
        (),
        ("gl",),
        (),
        {"ks": ("upgrade", "out-of-sync"), "gl": ("none", "suspended")},
        id="a suspended dependent never waits on its needs",
    ),
    pytest.param(
        (),
        ("gl",),
        ("gl",),
        (),
        {"gl": ("none", "suspended")},
        id="an absent suspended component is not installed",
    ),
    pytest.param(
        ("rmq", "ks", "gl", "x"),
        (),
        (None,),
        (),
        {n: ("none", "suspended") for n in ALL},
        id="a suspended cluster writes nothing",
    ),
    pytest.param(
        ("mc", "ks"),
        (),
        (),
        ("mc",),
        {"mc": ("none", "suspended"), "ks": ("blocked", "out-of-sync")},
        id="suspend: true in cluster.yaml",
    ),
]


@pytest.mark.parametrize(("changed", "absent", "api", "yaml", "expected"), CASES)
def test_suspend_table(
    changed: tuple[str, ...],
    absent: tuple[str, ...],
    api: tuple[str | None, ...],
    yaml: tuple[str, ...],
    expected: dict[str, tuple[str, str]],
) -> None:
    desired = cluster()
    desired = replace(desired, components={n: replace(c, suspended=n in yaml) for n, c in desired.components.items()})
    plan = make_plan(desired, observed(*changed, absent=absent), suspensions=by_api(*api) if api else None)
    got = summary(plan)
    assert {n: got[n] for n in expected} == expected


def test_a_suspended_component_says_who_why_and_what_waits() -> None:
    plan = make_plan(cluster(), observed("ks", "gl"), suspensions=by_api("ks"))
    ks = plan.action_for("ks")
    assert [r.code for r in ks.reasons][:2] == ["suspended", "suspended_pending"]
    assert ks.reasons[0].message == "component ks suspended by api at 2026-11-28T10:00:00+00:00: incident 42"
    assert "pending: upgrade" in ks.reasons[1].message
    assert "settings_changed" in [r.code for r in ks.reasons]  # why it would change, kept for the resume
    gl = plan.action_for("gl")
    assert gl.reasons[0].message == MSG_NEED_SUSPENDED.format(need="ks")


def test_the_components_own_suspension_wins_over_the_clusters_and_cluster_yaml() -> None:
    found = by_api(None, reason="freeze").with_suspension(Suspension("ks", by="alice@host", reason="db", at="t"))
    plan = make_plan(cluster(), observed(), suspensions=found)
    assert plan.action_for("ks").reasons[0].message == "component ks suspended by alice@host at t: db"
    assert plan.action_for("mc").reasons[0].message.startswith("cluster suspended by api")
    yaml_only = make_plan(replace(cluster(), suspended=True), observed())
    assert yaml_only.action_for("x").reasons[0].message == "cluster suspended in cluster.yaml (suspend: true)"


def test_blocked_spreads_from_a_dependent_blocked_by_a_suspension() -> None:
    desired = cluster()
    comps = dict(desired.components)
    comps["deep"] = replace(comps["gl"], name="deep", release="deep", needs=("gl",), digest="d-deep")
    plan = make_plan(replace(desired, components=comps), observed("ks", "gl"), suspensions=by_api("ks"))
    assert summary(plan)["deep"] == ("blocked", "absent")


# -- prune ------------------------------------------------------------------------------------------------


def orphan(
    component: str, *, namespace: str = "os", commit: str = "a" * 40, status: str = "deployed"
) -> ObservedRelease:
    return replace(
        deployed(component),
        namespace=namespace,
        status=status,
        labels={"digest": "d", "cluster": "dev", "component": component, "commit": commit},
    )


def pruning(prune: bool = True) -> DesiredCluster:
    return replace(cluster(), prune=prune)


def test_an_orphan_is_reported_and_kept_without_prune() -> None:
    desired = pruning(False)
    plan = plan_orphans(make_plan(desired, observed()), desired, [orphan("old")])
    old = plan.action_for("old")
    assert (old.action, old.state) == (ActionKind.none, ReleaseState.orphaned)
    assert [r.code for r in old.reasons] == ["orphaned", "orphan_kept"]
    assert old.to_dict()["state"] == "orphaned"
    assert old.wave == max(a.wave for a in plan.actions if a.component != "old") + 1


def test_prune_uninstalls_after_everything_else_dependents_first() -> None:
    desired = pruning()
    base = make_plan(desired, observed("ks"))
    # Before their removal: api needed db, db needed nothing; cache is independent.
    needs = {"api": ("db",), "db": (), "cache": ()}
    plan = plan_orphans(base, desired, [orphan("db"), orphan("api"), orphan("cache")], previous_needs=needs)
    rows = {a.component: a for a in plan.actions if a.state is ReleaseState.orphaned}
    assert {a.action for a in rows.values()} == {ActionKind.uninstall}
    every = {a.component for a in base.actions}
    for row in rows.values():
        assert every <= set(row.needs)  # only after every install/upgrade of the run
    assert "api" in rows["db"].needs and "db" not in rows["api"].needs  # the dependent goes first
    assert rows["api"].wave < rows["db"].wave and rows["cache"].wave == rows["api"].wave
    assert [a.component for a in plan.actions][-3:] == ["api", "cache", "db"]


def test_prune_order_unknown_goes_one_at_a_time() -> None:
    desired = pruning()
    orphans = [orphan("a1"), orphan("b1"), orphan("c1")]
    plan = plan_orphans(make_plan(desired, observed()), desired, orphans, previous_needs={"a1": None})
    rows = {a.component: a for a in plan.actions if a.state is ReleaseState.orphaned}
    assert "c1" in rows["b1"].needs and "b1" in rows["a1"].needs
    assert len({r.wave for r in rows.values()}) == 3
    assert "prune_order" in [r.code for r in rows["a1"].reasons]


@pytest.mark.parametrize(
    ("suspensions", "status", "code"),
    [
        (Suspensions(cluster=Suspension(None, by="api")), "deployed", "suspended"),
        (Suspensions(components={"old": Suspension("old", by="api")}), "deployed", "suspended"),
        (None, "pending-upgrade", "locked"),
    ],
)
def test_prune_holds_off_for_a_suspension_or_a_running_operation(
    suspensions: Suspensions | None, status: str, code: str
) -> None:
    desired = pruning()
    plan = plan_orphans(
        make_plan(desired, observed()), desired, [orphan("old", status=status)], suspensions=suspensions
    )
    old = plan.action_for("old")
    assert old.action is ActionKind.none and code in [r.code for r in old.reasons]


def test_cluster_yaml_suspension_holds_off_prune() -> None:
    desired = replace(pruning(), suspended=True)
    plan = plan_orphans(make_plan(desired, observed()), desired, [orphan("old")])
    assert plan.action_for("old").action is ActionKind.none


def test_a_release_a_desired_component_writes_is_never_an_orphan() -> None:
    """Component `mq` renamed `rabbitmq`, keeping its release name: the release is upgraded, not pruned."""
    desired = pruning()
    comps = dict(desired.components)
    comps["rabbitmq"] = replace(comps.pop("x"), name="rabbitmq", release="mq")
    desired = replace(desired, components=comps)
    plan = plan_orphans(make_plan(desired, {}), desired, [replace(orphan("mq"), name="mq")])
    assert [a.component for a in plan.actions if a.state is ReleaseState.orphaned] == []
