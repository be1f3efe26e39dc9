"""Release state and reasons from desired x observed: one table row per case (pure, no helm)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from deploy_manager.models.desired import ChartSpec, DesiredComponent
from deploy_manager.models.observed import ObservedRelease
from deploy_manager.models.plan import ReleaseState
from deploy_manager.planner.state import determine_state

VALUES: dict[str, Any] = {"conf": {"keystone": {"token": {"expiration": 3600}}}, "replicas": 1}
DESIRED = DesiredComponent(
    name="keystone",
    release="keystone",
    namespace="openstack",
    chart=ChartSpec(path="charts/openstack/keystone", digest="c" * 40, name="keystone", chart_version="0.2.0"),
    needs=(),
    timeout=300,
    values=VALUES,
    values_files=(),
    digest="d" * 40,
    values_digest="v" * 40,
)
LABELS = {"digest": "d" * 40, "commit": "1" * 40, "chart": "c" * 40, "values": "v" * 40}
DEPLOYED = ObservedRelease(
    namespace="openstack",
    name="keystone",
    revision=3,
    status="deployed",
    chart_name="keystone",
    chart_version="0.2.0",
    description="Upgrade complete",
    config=VALUES,
    labels=LABELS,
)
OLD_LABELS = {**LABELS, "digest": "0" * 40}


def obs(**kw: Any) -> ObservedRelease:
    return replace(DEPLOYED, **kw)


CASES = [
    ("absent", None, ReleaseState.absent, ["absent"], []),
    ("uninstalled with history", obs(status="uninstalled"), ReleaseState.absent, ["absent"], []),
    ("in sync", DEPLOYED, ReleaseState.in_sync, [], []),
    ("in sync, 1 stored as 1.0", obs(config={**VALUES, "replicas": 1.0}), ReleaseState.in_sync, [], []),
    ("pending upgrade", obs(status="pending-upgrade"), ReleaseState.locked, ["locked"], []),
    ("pending install", obs(status="pending-install"), ReleaseState.locked, ["locked"], []),
    ("failed, same digest", obs(status="failed", description="timed out"), ReleaseState.failed, ["last_failed"], []),
    (
        "values changed",
        obs(labels=OLD_LABELS, config={"conf": {"keystone": {"token": {"expiration": 600}}}, "replicas": 1}),
        ReleaseState.out_of_sync,
        ["values_changed"],
        ["conf.keystone.token.expiration"],
    ),
    (
        "key added and removed",
        obs(labels=OLD_LABELS, config={"replicas": 1, "old": True}),
        ReleaseState.out_of_sync,
        ["values_changed"],
        ["conf", "old"],
    ),
    (
        "chart version bump",
        obs(labels=OLD_LABELS, chart_version="0.1.0"),
        ReleaseState.out_of_sync,
        ["chart_version_changed"],
        [],
    ),
    (
        "chart content",
        obs(labels={**OLD_LABELS, "chart": "e" * 40}),
        ReleaseState.out_of_sync,
        ["chart_content_changed"],
        [],
    ),
    (
        "bootstrap inputs",
        obs(labels={**OLD_LABELS, "bootstrap": "b" * 40}),
        ReleaseState.out_of_sync,
        ["bootstrap_changed"],
        [],
    ),
    ("digest only", obs(labels=OLD_LABELS), ReleaseState.out_of_sync, ["settings_changed"], []),
    (
        "manual helm upgrade keeps our merged labels",
        obs(revision=4, config={**VALUES, "replicas": 3}),
        ReleaseState.drifted,
        ["changed_outside", "values_changed"],
        ["replicas"],
    ),
    (
        "helm rollback",
        obs(revision=5, labels=OLD_LABELS, description="Rollback to 2", config={**VALUES, "replicas": 2}),
        ReleaseState.drifted,
        ["rolled_back", "values_changed"],
        ["replicas"],
    ),
    (
        "installed by someone else",
        obs(labels={}, description="Install complete"),
        ReleaseState.drifted,
        ["not_managed"],
        [],
    ),
]


@pytest.mark.parametrize(("case", "observed", "state", "codes", "paths"), CASES, ids=[c[0] for c in CASES])
def test_determine_state(
    case: str, observed: ObservedRelease | None, state: ReleaseState, codes: list[str], paths: list[str]
) -> None:
    got_state, reasons = determine_state(DESIRED, observed)
    assert got_state is state
    assert [r.code for r in reasons] == codes
    if paths:
        changed = next(r for r in reasons if r.code == "values_changed")
        assert list(changed.paths) == paths
        assert changed.message == "values changed: " + ", ".join(paths)


def test_reason_messages_never_carry_values() -> None:
    secret = {"conf": {"db": {"password": "hunter22"}}}
    _, reasons = determine_state(
        replace(DESIRED, values=secret), obs(labels=OLD_LABELS, config={"conf": {"db": {"password": "old-secret"}}})
    )
    text = repr([r.to_dict() for r in reasons])
    assert "conf.db.password" in text and "hunter22" not in text and "old-secret" not in text


def test_many_paths_are_summarised() -> None:
    many = {f"k{i}": i for i in range(8)}
    _, reasons = determine_state(replace(DESIRED, values=many), obs(labels=OLD_LABELS, config={}))
    assert reasons[0].message == "values changed: k0, k1, k2, k3, k4 (+3 more)" and len(reasons[0].paths) == 8
