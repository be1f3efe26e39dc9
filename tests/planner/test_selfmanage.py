"""The manager's own release in its cluster (issue 15): the split, the verdict on it, the run to finish (pure)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from deploy_manager.models.observed import ObservedRelease
from deploy_manager.models.plan import Action, ActionKind, Plan, ReleaseState
from deploy_manager.models.run import RunRecord, RunStatus
from deploy_manager.planner.selfmanage import (
    SELF_NOT_VERIFIED,
    SELF_VERIFIED,
    HandoverTarget,
    SelfRelease,
    dependents,
    handover_summary,
    handover_target,
    split_for_handover,
    verify_self,
)

# dm is the manager's own release (in namespace dm-system); web needs it, ui needs web; db and cache do not.
NEEDS = {"db": (), "cache": (), "dm": ("db",), "web": ("dm", "cache"), "ui": ("web",), "batch": ("db",)}
OWN = SelfRelease(namespace="dm-system", name="dm", revision=4)
COMMIT = "c" * 40


def plan(kinds: dict[str, ActionKind] | None = None) -> Plan:
    kinds = kinds or {}
    return Plan(
        cluster="dev",
        commit=COMMIT,
        actions=tuple(
            Action(
                component=name,
                release=name,
                namespace="dm-system" if name == "dm" else "apps",
                action=kinds.get(name, ActionKind.upgrade),
                state=ReleaseState.out_of_sync,
                needs=needs,
            )
            for name, needs in NEEDS.items()
        ),
    )


def names(actions: tuple[Action, ...]) -> list[str]:
    return [a.component for a in actions]


@pytest.mark.parametrize(
    ("own_kind", "own", "first", "deferred"),
    [
        # Written: last, alone; its dependents (direct and transitive) wait for the new pod.
        (ActionKind.upgrade, OWN, ["db", "cache", "batch"], ["web", "ui"]),
        (ActionKind.install, OWN, ["db", "cache", "batch"], ["web", "ui"]),
        (ActionKind.unlock, OWN, ["db", "cache", "batch"], ["web", "ui"]),
        # Not written (in sync, blocked): the plan runs as it is.
        (ActionKind.none, OWN, list(NEEDS), []),
        (ActionKind.blocked, OWN, list(NEEDS), []),
        # Not configured, or another release of the same name in another namespace: not ours.
        (ActionKind.upgrade, None, list(NEEDS), []),
        (ActionKind.upgrade, SelfRelease(namespace="apps", name="dm"), list(NEEDS), []),
    ],
)
def test_split_writes_the_own_release_last_and_leaves_its_dependents(
    own_kind: ActionKind, own: SelfRelease | None, first: list[str], deferred: list[str]
) -> None:
    split = split_for_handover(plan({"dm": own_kind}), own)
    assert names(split.first.actions) == first
    assert names(split.deferred) == deferred
    assert (split.own is not None) == bool(deferred)
    if split.own is not None:
        assert split.own.component == "dm" and split.own.action is own_kind
        assert split.first.commit == COMMIT


def test_dependents_are_transitive() -> None:
    assert dependents(plan(), "dm") == {"web", "ui"}
    assert dependents(plan(), "db") == {"dm", "web", "ui", "batch"}
    assert dependents(plan(), "ui") == set()


def observed(**kw: object) -> ObservedRelease:
    base = ObservedRelease(
        namespace="dm-system",
        name="dm",
        revision=4,
        status="deployed",
        description="Upgrade complete",
        labels={"digest": "d", "commit": COMMIT, "handover": "7"},
    )
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("own", "release", "ok", "words"),
    [
        (OWN, observed(), True, "deployed at revision 4"),
        (replace(OWN, revision=None), observed(revision=9), True, "deployed at revision 9"),  # no revision to compare
        (OWN, None, False, "is not installed"),
        (OWN, observed(status="uninstalled"), False, "is not installed"),
        (OWN, observed(status="pending-upgrade"), False, "pending-upgrade at revision 4, not deployed"),
        (OWN, observed(status="failed", description="context deadline exceeded"), False, "context deadline exceeded"),
        (OWN, observed(labels={"commit": "a" * 40}), False, f"not at the handed-over commit {COMMIT}"),
        # A pod of an older revision (the new one never started, or a rollback by hand re-created this one).
        (replace(OWN, revision=3), observed(), False, "this pod runs revision 3"),
    ],
)
def test_verify_self(own: SelfRelease, release: ObservedRelease | None, ok: bool, words: str) -> None:
    verdict, reason = verify_self(own, release, commit=COMMIT)
    assert verdict is ok
    assert reason.code == (SELF_VERIFIED if ok else SELF_NOT_VERIFIED)
    assert words in reason.message


def run(run_id: int, status: RunStatus, commit: str | None = COMMIT, trigger: str = "push") -> RunRecord:
    return RunRecord(id=run_id, cluster="dev", commit=commit, trigger=trigger, status=status, created_at="t")


@pytest.mark.parametrize(
    ("runs", "release", "target"),
    [
        # The store has the handed-over run (same volume): finish it, whatever the labels say.
        ([run(8, RunStatus.succeeded), run(7, RunStatus.handed_over)], observed(), HandoverTarget(COMMIT, 7)),
        ([run(7, RunStatus.handed_over)], None, HandoverTarget(COMMIT, 7)),
        # A fresh store (emptyDir): the release's label names a handover the store does not know: record a run.
        ([], observed(), HandoverTarget(COMMIT)),
        ([run(1, RunStatus.succeeded, commit="a" * 40)], observed(), HandoverTarget(COMMIT)),
        # ... a replaced store whose run 7 is another commit's is not mistaken for it.
        ([run(7, RunStatus.succeeded, commit="a" * 40)], observed(), HandoverTarget(COMMIT)),
        # Already finished: by the pod that had this store (run 7, now succeeded or failed) ...
        ([run(7, RunStatus.succeeded)], observed(), None),
        ([run(7, RunStatus.failed)], observed(), None),
        # ... or recorded from the label by an earlier start of a pod with a fresh store.
        ([run(1, RunStatus.succeeded, trigger="handover")], observed(), None),
        # No handover: no label, no release, not written by us.
        ([], observed(labels={"commit": COMMIT}), None),
        ([], None, None),
        ([], observed(labels={"handover": "7"}), None),
        # A person's `helm upgrade` of the manager: helm merged our labels into their revision (not ours).
        ([], observed(inherited_labels=True), None),
    ],
)
def test_handover_target(runs: list[RunRecord], release: ObservedRelease | None, target: HandoverTarget | None) -> None:
    assert handover_target(runs, release) == target


def test_handover_summary_names_what_the_new_pod_does() -> None:
    text = handover_summary(OWN.id, ["web", "ui"], "failed: batch")
    assert text.startswith("handed over to the new pod of dm-system/dm")
    assert "left for the new pod: ui, web" in text and text.endswith("failed: batch")
    assert "left for" not in handover_summary(OWN.id, [])
