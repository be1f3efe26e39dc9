"""Which workflow checks run, where in a run, and what their outcome means (pure tables; issue 14)."""

from __future__ import annotations

import pytest

from deploy_manager.models.plan import Action, ActionKind, Plan
from deploy_manager.models.run import RunStatus, StepRecord, StepStatus
from deploy_manager.models.smoke import AfterRun, SmokeCheck, SmokeStatus
from deploy_manager.planner.smoke import (
    check_record,
    counts,
    due,
    end_actions,
    gate_plan,
    run_status,
    selected,
    summary,
    targets,
    verdict,
)

TOKEN = SmokeCheck("token-issue", "s.sh.j2", "keystone", gates=("keystone",))
IMAGE = SmokeCheck("image-list", "s.sh.j2", "glance", gates=("glance",))
BOOT = SmokeCheck("server-boot", "s.sh.j2", "nova", schedule=600)
CROSS = SmokeCheck("catalog", "s.sh.j2", "glance", gates=("keystone",), on_failure="rollback")
CHECKS = (TOKEN, IMAGE, BOOT)


def plan(**kinds: ActionKind) -> Plan:
    needs = {"keystone": (), "glance": ("keystone",), "placement": ("keystone",), "nova": ("glance", "placement")}
    return Plan(
        "dev",
        "c0ffee",
        tuple(
            Action(name, name, "openstack", kinds.get(name, ActionKind.none), needs=needs[name], wave=i)
            for i, name in enumerate(needs)
        ),
    )


@pytest.mark.parametrize(
    ("written", "mode", "expected"),
    [
        ({"keystone"}, AfterRun.changed, ["token-issue"]),
        ({"glance"}, AfterRun.changed, ["image-list"]),
        ({"nova", "glance"}, AfterRun.changed, ["image-list", "server-boot"]),
        (set(), AfterRun.changed, []),
        (set(), AfterRun.all, ["token-issue", "image-list", "server-boot"]),
        ({"keystone", "glance", "nova"}, AfterRun.none, []),
    ],
)
def test_selected(written: set[str], mode: AfterRun, expected: list[str]) -> None:
    assert [c.name for c in selected(CHECKS, written, mode)] == expected


def test_a_check_whose_gate_is_written_becomes_a_node_its_gates_dependents_need() -> None:
    gated = gate_plan(plan(keystone=ActionKind.upgrade), CHECKS, AfterRun.changed)
    actions = {a.component: a for a in gated.actions}
    node = actions["smoke:token-issue"]
    assert (node.action, node.needs, node.namespace) == (ActionKind.smoke, ("keystone",), "openstack")
    assert node.reasons[0].code == "smoke_gate"
    assert actions["glance"].needs == ("keystone", "smoke:token-issue")
    assert actions["placement"].needs == ("keystone", "smoke:token-issue")
    assert actions["nova"].needs == ("glance", "placement")  # waits through glance and placement
    assert "smoke:image-list" not in actions  # glance is not written: its gate check does not run


@pytest.mark.parametrize("mode", [AfterRun.none])
def test_no_gate_when_checks_are_off(mode: AfterRun) -> None:
    p = plan(keystone=ActionKind.upgrade)
    assert gate_plan(p, CHECKS, mode) is p


def test_nothing_written_leaves_the_plan_as_it_is() -> None:
    p = plan()
    assert gate_plan(p, CHECKS, AfterRun.changed) is p


@pytest.mark.parametrize(
    ("kinds", "outcome", "mode", "expected"),
    [
        # nova written and succeeded: its ungated check runs at the end.
        ({"nova": ActionKind.upgrade}, {"nova": StepStatus.succeeded}, AfterRun.changed, [("server-boot", "smoke")]),
        # nova blocked: the check is recorded blocked, naming it.
        ({"nova": ActionKind.upgrade}, {"nova": StepStatus.blocked}, AfterRun.changed, [("server-boot", "blocked")]),
        # a gate check (keystone written) is not an end check.
        ({"keystone": ActionKind.upgrade}, {}, AfterRun.changed, []),
        # all: every check that is not a gate of this run, even of unwritten components.
        ({"keystone": ActionKind.upgrade}, {}, AfterRun.all, [("image-list", "smoke"), ("server-boot", "smoke")]),
    ],
)
def test_end_actions(
    kinds: dict[str, ActionKind], outcome: dict[str, StepStatus], mode: AfterRun, expected: list[tuple[str, str]]
) -> None:
    ends = end_actions(plan(**kinds), CHECKS, mode, outcome)
    assert [(a.component.removeprefix("smoke:"), a.action.value) for a in ends] == expected
    for a in ends:
        if a.action is ActionKind.blocked:
            assert a.reasons[0].message == "nova is blocked"


@pytest.mark.parametrize(
    ("ok", "duration", "sla", "expected"),
    [
        (True, 1.0, None, SmokeStatus.passed),
        (True, 1.0, 5.0, SmokeStatus.passed),
        (True, 5.0, 5.0, SmokeStatus.passed),  # at the SLA is within it
        (True, 5.1, 5.0, SmokeStatus.slow),
        (False, 0.5, 5.0, SmokeStatus.failed),  # a fast failure is a failure
        (False, 60.0, None, SmokeStatus.failed),  # timed out
        (None, 0.0, 5.0, SmokeStatus.error),  # could not run
    ],
)
def test_verdict(ok: bool | None, duration: float, sla: float | None, expected: SmokeStatus) -> None:
    assert verdict(ok, duration, sla) is expected
    assert expected.ok is (expected is SmokeStatus.passed)  # slow counts as failed


@pytest.mark.parametrize(
    ("check", "written", "gate", "expected"),
    [
        (TOKEN, {"keystone", "glance"}, True, ("keystone",)),
        (CROSS, {"keystone"}, True, ("keystone",)),  # a gate remediates its gates, not its component
        (BOOT, {"nova"}, False, ()),  # ungated, no on_failure: reports only
        (CROSS, {"glance", "keystone"}, False, ("glance", "keystone")),  # on_failure: rollback, what it names
        (CROSS, {"nova"}, False, ()),  # names nothing the run wrote
    ],
)
def test_targets(check: SmokeCheck, written: set[str], gate: bool, expected: tuple[str, ...]) -> None:
    assert targets(check, written, gate=gate) == expected


@pytest.mark.parametrize(
    ("components", "checks", "expected"),
    [
        (RunStatus.succeeded, [SmokeStatus.passed], RunStatus.succeeded),
        (RunStatus.succeeded, [SmokeStatus.passed, SmokeStatus.failed], RunStatus.degraded),
        (RunStatus.succeeded, [SmokeStatus.slow], RunStatus.degraded),
        (RunStatus.succeeded, [SmokeStatus.error], RunStatus.degraded),
        (RunStatus.succeeded, [], RunStatus.succeeded),
        (RunStatus.failed, [SmokeStatus.failed], RunStatus.failed),  # a failed run stays failed
        (RunStatus.succeeded, [None], RunStatus.succeeded),  # a blocked check
    ],
)
def test_run_status(components: RunStatus, checks: list[SmokeStatus | None], expected: RunStatus) -> None:
    assert run_status(components, checks) is expected


def test_summary_and_counts() -> None:
    passed = {n: SmokeStatus.passed for n in ("a", "b", "c", "d", "e", "f")}
    assert summary(passed) == "6 checks passed"
    assert summary({"a": SmokeStatus.passed}) == "1 check passed"
    mixed = {"a": SmokeStatus.passed, "b": SmokeStatus.failed, "c": SmokeStatus.slow}
    assert summary(mixed) == "2 of 3 checks failed: b, c (slow)"
    assert summary({}) == ""
    assert counts(mixed.values()) == {"passed": 1, "failed": 1, "slow": 1, "error": 0}


@pytest.mark.parametrize(
    ("last", "now", "expected"),
    [
        ({}, 0.0, ["server-boot"]),  # never ran: due at once
        ({"server-boot": 100.0}, 650.0, []),
        ({"server-boot": 100.0}, 700.0, ["server-boot"]),
    ],
)
def test_due(last: dict[str, float], now: float, expected: list[str]) -> None:
    assert [c.name for c in due(CHECKS, last, now)] == expected  # only checks with a schedule


def test_check_record_names_the_checks_component() -> None:
    step = StepRecord("smoke:server-boot", "", "", "blocked", StepStatus.blocked)
    mapped = check_record(step, CHECKS)
    assert (mapped.component, mapped.action, mapped.status) == ("nova", "smoke:server-boot", StepStatus.blocked)
    other = StepRecord("nova", "nova", "ns", "upgrade", StepStatus.succeeded)
    assert check_record(other, CHECKS) is other
