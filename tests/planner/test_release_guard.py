"""The OpenStack release guard (pure): which release changes pass, which are refused, and what the plan does."""

from __future__ import annotations

from typing import Any

import pytest

from deploy_manager.models.desired import ChartSpec, DesiredCluster, DesiredComponent
from deploy_manager.models.observed import ObservedRelease, ReleaseId
from deploy_manager.models.plan import ActionKind, Plan
from deploy_manager.planner.plan import make_plan
from deploy_manager.planner.release_guard import (
    OpenStackRelease,
    allowed_targets,
    image_releases,
    judge,
    parse_allow,
    refusal_message,
    release_of_image,
    release_reasons,
)

R = OpenStackRelease.parse


@pytest.mark.parametrize(
    ("ref", "release"),
    [
        ("quay.io/airshipit/nova:2026.2-ubuntu_noble", "2026.2"),
        ("quay.io/airshipit/nova:2024.1-ubuntu_jammy-20250610", "2024.1"),
        ("quay.io/airshipit/nova:2026.1", "2026.1"),
        ("registry:5000/airshipit/nova:2026.2-ubuntu_noble@sha256:" + "a" * 64, "2026.2"),
        ("registry:5000/airshipit/nova", None),  # no tag: the port is not a tag
        ("quay.io/airshipit/nova@sha256:" + "a" * 64, None),  # a digest alone names no release
        ("quay.io/airshipit/nova:latest", None),
        ("quay.io/airshipit/nova:2026.3", None),  # no such release number
        ("quay.io/airshipit/nova:20261", None),
        ("docker.io/library/rabbitmq:3.13.7-management", None),
    ],
)
def test_release_of_image(ref: str, release: str | None) -> None:
    found = release_of_image(ref)
    assert (str(found) if found else None) == release


@pytest.mark.parametrize(
    ("old", "new", "code"),
    [
        ("2026.2", "2026.2", "same"),
        ("2026.1", "2026.2", "next"),  # N -> N+1 within a year
        ("2026.2", "2027.1", "next"),  # N -> N+1 across a year
        ("2025.1", "2026.1", "slurp"),  # SLURP -> next SLURP, skipping 2025.2
        ("2025.2", "2026.2", "release_skip"),  # a non-SLURP release may not skip
        ("2025.1", "2026.2", "release_skip"),  # three steps, even from a SLURP release
        ("2024.1", "2026.1", "release_skip"),  # SLURP -> the SLURP after next
        ("2026.2", "2026.1", "downgrade"),
        ("2026.2", "2024.1", "downgrade"),
    ],
)
def test_judge(old: str, new: str, code: str) -> None:
    a, b = R(old), R(new)
    assert a is not None and b is not None
    assert judge(a, b)[0] == code


def test_allowed_targets() -> None:
    assert [str(r) for r in allowed_targets(OpenStackRelease(2025, 1))] == ["2025.1", "2025.2", "2026.1"]
    assert [str(r) for r in allowed_targets(OpenStackRelease(2025, 2))] == ["2025.2", "2026.1"]


def tags(**images: str) -> dict[str, Any]:
    return {"images": {"tags": {k: f"quay.io/airshipit/nova:{v}-ubuntu_noble" for k, v in images.items()}}}


def test_image_releases_reads_only_release_tags() -> None:
    values = {"images": {"tags": {"a": "x/nova:2026.2", "b": "x/rabbitmq:3.13", "c": 7}}}
    assert image_releases(values) == {"a": OpenStackRelease(2026, 2)}
    assert image_releases({}) == {} and image_releases(None) == {} and image_releases({"images": []}) == {}


@pytest.mark.parametrize(
    ("deployed", "desired", "allow", "codes"),
    [
        (tags(api="2026.2"), tags(api="2026.2"), None, []),
        (tags(api="2026.2"), tags(api="2027.1"), None, ["release_upgrade"]),
        (tags(api="2025.1", db="2025.1"), tags(api="2026.1", db="2026.1"), None, ["release_upgrade"]),
        (tags(api="2026.2", db="2026.2"), tags(api="2027.2", db="2027.2"), None, ["release_skip"]),
        (tags(api="2026.2", db="2026.2"), tags(api="2026.1", db="2026.1"), None, ["downgrade"]),
        # One image of the component going back is enough.
        (tags(api="2026.2", db="2026.2"), tags(api="2027.1", db="2026.1"), None, ["downgrade"]),
        # A canary: one image a release ahead stays where it is, the rest follow one release.
        (tags(api="2026.2", compute="2027.1"), tags(api="2027.1", compute="2027.1"), None, ["release_upgrade"]),
        # Images that are new, or whose tag names no release, are not judged.
        (tags(api="2026.2"), {"images": {"tags": {"api": "x/nova:2026.2", "new": "x/nova:2029.1"}}}, None, []),
        ({}, tags(api="2029.1"), None, []),
        # The escape hatch lets exactly the named change through.
        (tags(api="2025.1"), tags(api="2026.2"), "2025.1->2026.2", ["release_change_allowed"]),
        (tags(api="2025.1"), tags(api="2026.2"), "2025.1 -> 2027.1", ["release_skip"]),
        (tags(api="2026.2"), tags(api="2026.1"), "2026.2->2026.1", ["release_change_allowed"]),
    ],
)
def test_release_reasons(
    deployed: dict[str, Any], desired: dict[str, Any], allow: str | None, codes: list[str]
) -> None:
    assert [r.code for r in release_reasons(desired, deployed, allow)] == codes


def test_refusal_names_from_to_image_and_rule() -> None:
    (skip,) = release_reasons(tags(api="2026.2"), tags(api="2025.1"))
    assert skip.message == (
        "OpenStack release 2025.1 -> 2026.2 (images.tags.api) skips a release: refused, only N -> N+1 or"
        " SLURP -> next SLURP is supported (from 2025.1: 2025.2, 2026.1)"
    )
    (down,) = release_reasons(tags(api="2026.1"), tags(api="2026.2"))
    assert down.message.startswith("OpenStack release 2026.2 -> 2026.1 (images.tags.api) is a downgrade: refused")


def test_parse_allow() -> None:
    assert parse_allow("2025.1->2026.2") == (OpenStackRelease(2025, 1), OpenStackRelease(2026, 2))
    assert parse_allow(None) is None and parse_allow("2025.1") is None and parse_allow("x->2026.2") is None


# -- in the plan ----------------------------------------------------------------------------------------
def component(
    name: str, values: dict[str, Any], needs: tuple[str, ...] = (), allow: str | None = None
) -> DesiredComponent:
    return DesiredComponent(
        name=name,
        release=name,
        namespace="openstack",
        chart=ChartSpec(path=f"charts/{name}", digest="c"),
        needs=needs,
        timeout=300,
        values=values,
        values_files=(),
        digest=f"new-{name}",
        allow_release_change=allow,
    )


def deployed(name: str, values: dict[str, Any], status: str = "deployed") -> ObservedRelease:
    return ObservedRelease(
        namespace="openstack",
        name=name,
        revision=3,
        status=status,
        config=values,
        labels={"digest": f"old-{name}", "chart": "c"},
        last_deployed=3 if status == "deployed" else 2,
    )


def plan_for(nova_to: str, *, allow: str | None = None, suspend: bool = False) -> Plan:
    comps = {
        "keystone": component("keystone", tags(api="2026.2")),
        "nova": component("nova", tags(api=nova_to, db_sync=nova_to), ("keystone",), allow),
        "horizon": component("horizon", tags(api="2026.2"), ("nova",)),
    }
    if suspend:
        from dataclasses import replace

        comps["nova"] = replace(comps["nova"], suspended=True)
    observed = {
        ReleaseId("openstack", "keystone"): deployed("keystone", tags(api="2026.2")),
        ReleaseId("openstack", "nova"): deployed("nova", tags(api="2026.2", db_sync="2026.2")),
        ReleaseId("openstack", "horizon"): deployed("horizon", tags(api="2026.1")),
    }
    return make_plan(DesiredCluster("demo", "c0ffee", "openstack", comps), observed)


def test_plan_blocks_a_skip_and_its_dependents_only() -> None:
    plan = plan_for("2027.2")
    nova, horizon, keystone = (plan.action_for(n) for n in ("nova", "horizon", "keystone"))
    assert nova.action is ActionKind.blocked and nova.reasons[0].code == "release_skip"
    assert horizon.action is ActionKind.blocked and horizon.reasons[0].code == "need_blocked"
    assert keystone.action is ActionKind.upgrade  # settings changed, same release: not judged a change
    message = refusal_message(plan.cluster, plan.actions)
    assert message is not None and "\n" not in message
    assert message.startswith(
        "cluster demo: refused before any write: component nova: OpenStack release 2026.2 -> 2027.2"
    )
    assert "horizon" not in message  # a dependent is blocked, not refused


def test_plan_upgrade_to_the_next_release_says_so() -> None:
    plan = plan_for("2027.1")
    nova = plan.action_for("nova")
    assert nova.action is ActionKind.upgrade
    assert nova.reasons[0].code == "release_upgrade" and "2026.2 -> 2027.1 (N -> N+1)" in nova.reasons[0].message
    assert refusal_message(plan.cluster, plan.actions) is None


def test_plan_downgrade_refused_unless_allowed_once() -> None:
    assert plan_for("2026.1").action_for("nova").reasons[0].code == "downgrade"
    allowed = plan_for("2026.1", allow="2026.2->2026.1").action_for("nova")
    assert allowed.action is ActionKind.upgrade and allowed.reasons[0].code == "release_change_allowed"


def test_a_suspended_component_is_never_refused() -> None:
    plan = plan_for("2027.2", suspend=True)
    assert plan.action_for("nova").action is ActionKind.none
    assert refusal_message(plan.cluster, plan.actions) is None
