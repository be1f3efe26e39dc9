"""The manager's own release as a component of its cluster (issue 15): pure decisions, no I/O.

A manager that upgrades its own release with `helm upgrade --wait` waits on a pod that, under the chart's
`Recreate` strategy, only starts once the waiting pod has exited. So a run that writes the manager's own
release (`DM_SELF_RELEASE` / `DM_SELF_NAMESPACE`, which the chart sets) does it differently:

- `split_for_handover`: the own release is written LAST (after every other component of the run has finished)
  and its dependents are left to the new pod: nothing is started after it;
- the write does not wait on itself (`reconcile.selfmanage`), the step records reason `handed_over` and the run
  ends `handed_over`, releasing the Lease;
- `handover_target`: at start-up the new pod finds the handed-over run (in its store; with a fresh store, from
  the `deploy-manager.io/handover` label on its own release) and
- `verify_self`: checks its own release (deployed, at the run's commit, at the revision this pod runs), then
  finishes the run with the components still to do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from deploy_manager.models.observed import ObservedRelease, ReleaseId
from deploy_manager.models.plan import Action, Plan, Reason
from deploy_manager.models.run import RunRecord, RunStatus

# Reason codes and messages (stable strings: the API and the status page show them).
HANDED_OVER = "handed_over"
SELF_VERIFIED = "self_verified"
SELF_NOT_VERIFIED = "self_not_verified"
# The label (under deploy-manager.io/) that carries the id of the run that handed over, on the own release.
HANDOVER_LABEL = "handover"
TRIGGER_HANDOVER = "handover"
VERIFY_ACTION = "verify"

MSG_HANDED_OVER = (
    "the manager's own release, written without waiting on itself as the run's last write: "
    "its new pod verifies it and finishes the run"
)
MSG_RUN_HANDED_OVER = "handed over to the new pod of {release}: it verifies its release and finishes the run"
MSG_WAITING = "left for the new pod: {names}"
MSG_VERIFIED = "release {release} is deployed at revision {revision} (commit {commit}) and this pod runs it"
MSG_ABSENT = "release {release} is not installed"
MSG_NOT_DEPLOYED = "release {release} is {status} at revision {revision}, not deployed: {description}"
MSG_OTHER_COMMIT = "release {release} is at commit {found}, not at the handed-over commit {commit}"
MSG_OTHER_REVISION = (
    "this pod runs revision {mine} of release {release}, which is at revision {revision}: "
    "the pod of the handed-over revision did not start (or was replaced)"
)


@dataclass(frozen=True)
class SelfRelease:
    """The manager's own Helm release, as its chart passes it (DM_SELF_RELEASE, DM_SELF_NAMESPACE,
    DM_SELF_REVISION: the revision this pod was started from)."""

    namespace: str
    name: str
    revision: int | None = None

    @property
    def id(self) -> ReleaseId:
        return ReleaseId(self.namespace, self.name)


@dataclass(frozen=True)
class HandoverSplit:
    """A plan cut in three: what runs first (everything that does not wait on the own release), the own
    release's action (written last), and its dependents (left to the new pod)."""

    first: Plan
    own: Action | None  # None: the plan does not write the own release; run it as it is
    deferred: tuple[Action, ...] = ()


def own_action(plan: Plan, own: SelfRelease | None) -> Action | None:
    """The plan's action on the manager's own release, if it writes it."""
    if own is None:
        return None
    for action in plan.actions:
        if ReleaseId(action.namespace, action.release) == own.id and action.writes:
            return action
    return None


def dependents(plan: Plan, component: str) -> set[str]:
    """Every component that needs `component`, directly or through others."""
    out: set[str] = set()
    frontier = {component}
    while frontier:
        frontier = {a.component for a in plan.actions if set(a.needs) & frontier} - out
        out |= frontier
    return out


def split_for_handover(plan: Plan, own: SelfRelease | None) -> HandoverSplit:
    action = own_action(plan, own)
    if action is None:
        return HandoverSplit(first=plan, own=None)
    later = dependents(plan, action.component)
    first = tuple(a for a in plan.actions if a.component != action.component and a.component not in later)
    deferred = tuple(a for a in plan.actions if a.component in later)
    return HandoverSplit(first=Plan(plan.cluster, plan.commit, first), own=action, deferred=deferred)


def handover_summary(release: ReleaseId, deferred: Iterable[str], failed: str = "") -> str:
    """The run's one-line `error` when it ends `handed_over` (what the new pod is to do)."""
    names = sorted(deferred)
    parts = [MSG_RUN_HANDED_OVER.format(release=release), MSG_WAITING.format(names=", ".join(names)) if names else ""]
    return "; ".join(p for p in (*parts, failed) if p)


def verify_self(own: SelfRelease, observed: ObservedRelease | None, *, commit: str) -> tuple[bool, Reason]:
    """Is the handed-over release what this pod runs? Deployed, at the run's commit, and (when the chart passed
    it) at the revision this pod was started from."""
    release = own.id
    if observed is None or observed.status in ("uninstalled", "uninstalling"):
        return False, Reason(SELF_NOT_VERIFIED, MSG_ABSENT.format(release=release))
    if observed.status != "deployed":
        return False, Reason(
            SELF_NOT_VERIFIED,
            MSG_NOT_DEPLOYED.format(
                release=release, status=observed.status, revision=observed.revision, description=observed.description
            ),
        )
    if observed.commit != commit:
        return False, Reason(
            SELF_NOT_VERIFIED, MSG_OTHER_COMMIT.format(release=release, found=observed.commit, commit=commit)
        )
    if own.revision is not None and own.revision != observed.revision:
        return False, Reason(
            SELF_NOT_VERIFIED, MSG_OTHER_REVISION.format(mine=own.revision, release=release, revision=observed.revision)
        )
    return True, Reason(
        SELF_VERIFIED, MSG_VERIFIED.format(release=release, revision=observed.revision, commit=commit[:12])
    )


@dataclass(frozen=True)
class HandoverTarget:
    """The run a starting pod is to finish: an existing `handed_over` run of its store (finished at its commit), or
    (run_id None) a new `handover` run to record, when the store does not know the handover its own release's
    label names: it verifies the release at `commit` (the label's) and deploys the branch head, never that older
    commit (the cluster may have moved past it since)."""

    commit: str
    run_id: int | None = None


def handover_target(runs: Iterable[RunRecord], own: ObservedRelease | None) -> HandoverTarget | None:
    """Which handed-over run this pod finishes, if any (`runs`: the cluster's recent runs, newest first).

    The store is the record when it has the run (same volume). An emptyDir store lost it: the own release's
    newest revision says a handover wrote it (its `handover` label, set by us on that revision, not inherited
    from an earlier one as a person's `helm upgrade` would); if the store knows no run of that commit that is
    either that run or a `handover` run, one is recorded now. A store replaced since (ids restart) cannot
    mistake another run for it: the commit must match too. (A pod replaced with a fresh store but no upgrade, a
    drained node, records one such run: it verifies its release and re-plans, as any start-up does.)
    """
    runs = list(runs)
    for run in runs:
        if run.status is RunStatus.handed_over and run.commit:
            return HandoverTarget(commit=run.commit, run_id=run.id)
    if own is None:
        return None
    label, commit = own.labels.get(HANDOVER_LABEL, ""), own.commit
    if not label.isdigit() or not commit or not own.ours:
        return None
    for run in runs:
        if run.commit == commit and (run.id == int(label) or run.trigger == TRIGGER_HANDOVER):
            return None  # already finished (or being finished) by a pod that had this store
    return HandoverTarget(commit=commit)
