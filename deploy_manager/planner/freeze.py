"""Suspend and prune in the plan (issue 13). Pure: no I/O, table-tested.

Suspend: a suspended component (ConfigMap entry, else the cluster's entry, else `suspend: true` in
cluster.yaml) is planned state `suspended`, action `none`, with a reason naming who/why and, when it would
have changed, what is pending. `make_plan` asks `suspension_for` and `freeze` per component; a dependent is
`blocked` only if it would write and a suspended need has a change pending (`pending_change`): a need that
is suspended but unchanged is as good as deployed.

Prune: `plan_orphans` appends one row per orphaned release (ours by its cluster label, its component gone
from cluster.yaml): state `orphaned`, action `none`, or `uninstall` with `prune: true`. An uninstall needs
every component of the plan (so it starts only after all installs/upgrades of the run succeeded; a failed
or blocked one blocks it) and every orphan that depended on it (dependents first), in the order the
cluster.yaml of the release's own commit declared (`previous_needs`). When that order is unknown for any
orphan, the uninstalls run one at a time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from deploy_manager.models.desired import DesiredCluster, DesiredComponent
from deploy_manager.models.observed import ObservedRelease
from deploy_manager.models.plan import Action, ActionKind, Plan, Reason, ReleaseState
from deploy_manager.models.suspend import SOURCE_CLUSTER_YAML, Suspension, Suspensions
from deploy_manager.planner.graph import topo_waves

WRITES = frozenset({ActionKind.install, ActionKind.upgrade, ActionKind.unlock})

MSG_PENDING = "while suspended it is not written; pending: {action}"
MSG_NEED_SUSPENDED = "needs {need}, which is suspended with a change pending"
MSG_ORPHANED = (
    "component {component} is no longer in cluster.yaml;"
    " release {release} still carries the labels of cluster {cluster}"
)
MSG_KEEP = "kept: set `prune: true` in cluster.yaml to uninstall it"
MSG_PRUNE = "prune: true: uninstalled after every install/upgrade of this run succeeded, dependents first"
MSG_ORDER_UNKNOWN = "the dependency order is unknown (a release's cluster.yaml cannot be read): pruned one at a time"
MSG_ORPHAN_LOCKED = "release is {status}: an operation may be running on it; left alone"


def suspension_for(desired: DesiredCluster, comp: DesiredComponent, found: Suspensions | None) -> Suspension | None:
    """The suspension that freezes `comp`: the ConfigMap's (component, then cluster), then cluster.yaml's."""
    if found is not None:
        own = found.for_component(comp.name)
        if own is not None:
            return own
    if comp.suspended:
        return Suspension(comp.name, by=SOURCE_CLUSTER_YAML, source=SOURCE_CLUSTER_YAML)
    if desired.suspended:
        return Suspension(None, by=SOURCE_CLUSTER_YAML, source=SOURCE_CLUSTER_YAML)
    return None


def cluster_suspension(desired: DesiredCluster, found: Suspensions | None) -> Suspension | None:
    if found is not None and found.cluster is not None:
        return found.cluster
    if desired.suspended:
        return Suspension(None, by=SOURCE_CLUSTER_YAML, source=SOURCE_CLUSTER_YAML)
    return None


def pending_change(kind: ActionKind, state: ReleaseState) -> bool:
    """Would the component change if it were not suspended? (then dependents that write must wait)"""
    return kind in WRITES or state is not ReleaseState.in_sync


def freeze(
    suspension: Suspension, kind: ActionKind, reasons: Sequence[Reason]
) -> tuple[ActionKind, ReleaseState, list[Reason]]:
    """A suspended component's action, state and reasons: `none`, `suspended`, who/why first, then what it
    would have done and why (so the operator sees what waits for the resume)."""
    out = [Reason("suspended", suspension.describe())]
    if kind is not ActionKind.none:
        out.append(Reason("suspended_pending", MSG_PENDING.format(action=kind.value)))
    return ActionKind.none, ReleaseState.suspended, out + list(reasons)


def suspended_needs(needs: Sequence[str], changed: set[str]) -> list[Reason]:
    return [Reason("need_suspended", MSG_NEED_SUSPENDED.format(need=n)) for n in needs if n in changed]


def plan_orphans(
    plan: Plan,
    desired: DesiredCluster,
    orphans: Sequence[ObservedRelease],
    *,
    previous_needs: Mapping[str, Sequence[str] | None] | None = None,
    suspensions: Suspensions | None = None,
) -> Plan:
    """`plan` with one row per orphaned release appended (see the module docstring).

    `orphans`: releases carrying our labels for this cluster whose component is not in `desired`;
    `previous_needs`: component -> its needs in cluster.yaml at the release's commit (None: unreadable)."""
    previous_needs = previous_needs or {}
    frozen = cluster_suspension(desired, suspensions)
    rows: dict[str, Action] = {}
    # A release a desired component writes (a component renamed, its release kept) is that component's now.
    claimed = {(c.namespace, c.release) for c in desired.components.values()}
    for obs in sorted(orphans, key=lambda o: (o.labels.get("component", o.name), o.namespace, o.name)):
        component = obs.labels.get("component") or obs.name
        if component in rows or component in desired.components or (obs.namespace, obs.name) in claimed:
            continue  # two releases claiming one component: only the first is planned (the other stays)
        reasons = [
            Reason(
                "orphaned",
                MSG_ORPHANED.format(component=component, release=f"{obs.namespace}/{obs.name}", cluster=desired.name),
            )
        ]
        kind = ActionKind.none
        own = suspensions.components.get(component) if suspensions is not None else None
        held = own or frozen
        if not desired.prune:
            reasons.append(Reason("orphan_kept", MSG_KEEP))
        elif held is not None:
            reasons.insert(0, Reason("suspended", held.describe()))
        elif obs.status.startswith("pending-"):
            reasons.append(Reason("locked", MSG_ORPHAN_LOCKED.format(status=obs.status)))
        else:
            kind = ActionKind.uninstall
            reasons.append(Reason("prune", MSG_PRUNE))
        rows[component] = Action(
            component=component,
            release=obs.name,
            namespace=obs.namespace,
            action=kind,
            reasons=tuple(reasons),
            state=ReleaseState.orphaned,
            digest=obs.digest or "",
            revision=obs.revision,
            last_deployed=obs.last_deployed,
        )
    if not rows:
        return plan
    pruned = sorted(n for n, a in rows.items() if a.action is ActionKind.uninstall)
    # Reverse the old needs among the pruned: X waits for every pruned orphan that needed X.
    known = all(previous_needs.get(n) is not None for n in pruned)
    after: dict[str, list[str]] = {n: [] for n in pruned}
    if known:
        for name in pruned:
            for need in previous_needs.get(name) or ():
                if need in after:
                    after[need].append(name)
    else:  # one at a time, in reverse name order (a guess: dependents are often named after what they need)
        chain = sorted(pruned, reverse=True)
        for earlier, later in zip(chain, chain[1:], strict=False):
            after[later].append(earlier)
    first_wave = max((a.wave for a in plan.actions), default=-1) + 1
    waves = topo_waves(after) if pruned else []
    wave_of = {n: first_wave + i for i, wave in enumerate(waves) for n in wave}
    everything = tuple(a.component for a in plan.actions)
    out: list[Action] = []
    for name in sorted(rows):
        row = rows[name]
        if row.action is ActionKind.uninstall:
            extra: tuple[Reason, ...] = ()
            if not known:
                extra = (Reason("prune_order", MSG_ORDER_UNKNOWN),)
            needs = everything + tuple(sorted(after[name]))
            row = replace(row, needs=needs, wave=wave_of[name], reasons=row.reasons + extra)
        else:
            row = replace(row, wave=first_wave)
        out.append(row)
    out.sort(key=lambda a: (a.wave, a.component))
    return replace(plan, actions=plan.actions + tuple(out))
