"""Map release states to actions, in dependency order (pure).

absent -> install; out-of-sync, drifted, failed -> upgrade; in-sync -> none; locked -> unlock when its
operation is provably dead (we hold the Lease; the pending revision is ours or older than its timeout),
else blocked (`planner.state.unlock_verdict`). An upgrade to a downgraded or skipped OpenStack release is
blocked (`planner.release_guard`).
A component whose need is blocked is blocked too (transitively); a need being installed or upgraded
is not a block: the executor runs the dependent after it succeeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from deploy_manager.clock import utcnow
from deploy_manager.models.desired import DesiredCluster
from deploy_manager.models.observed import ObservedRelease, ReleaseId
from deploy_manager.models.plan import Action, ActionKind, Plan, Reason, ReleaseState
from deploy_manager.models.suspend import Suspensions
from deploy_manager.planner.freeze import freeze, pending_change, suspended_needs, suspension_for
from deploy_manager.planner.graph import topo_waves
from deploy_manager.planner.release_guard import refused, release_reasons
from deploy_manager.planner.state import determine_state, unlock_verdict

MSG_NEED_BLOCKED = "needs {need}, which is blocked"

ACTION_FOR_STATE = {
    ReleaseState.absent: ActionKind.install,
    ReleaseState.out_of_sync: ActionKind.upgrade,
    ReleaseState.drifted: ActionKind.upgrade,
    ReleaseState.failed: ActionKind.upgrade,
    ReleaseState.in_sync: ActionKind.none,
    ReleaseState.locked: ActionKind.blocked,
}


def make_plan(
    desired: DesiredCluster,
    observed: Mapping[ReleaseId, ObservedRelease],
    *,
    now: datetime | None = None,
    lease_held: bool = True,
    suspensions: Suspensions | None = None,
) -> Plan:
    """`now` dates pending revisions (default: the clock); `lease_held`: this manager holds the cluster Lease
    (or will, before it writes: `plan` shows what an `apply` would do); `suspensions`: the suspend ConfigMap's
    (cluster.yaml's `suspend: true` comes with `desired`), see `planner.freeze`."""
    now = now if now is not None else utcnow()
    needs = {name: list(c.needs) for name, c in desired.components.items()}
    waves = topo_waves(needs)
    actions: dict[str, Action] = {}
    frozen_changes: set[str] = set()  # suspended components that would have changed
    for wave_no, wave in enumerate(waves):
        for name in wave:
            comp = desired.components[name]
            obs = observed.get(ReleaseId(comp.namespace, comp.release))
            state, reasons = determine_state(comp, obs)
            kind = ACTION_FOR_STATE[state]
            if state is ReleaseState.locked and obs is not None:
                unlock, why = unlock_verdict(comp, obs, now=now, lease_held=lease_held)
                kind = ActionKind.unlock if unlock else ActionKind.blocked
                reasons = [*reasons, *why]
            if kind in (ActionKind.upgrade, ActionKind.unlock) and obs is not None:
                # Issue 17: a downgrade or a skipped OpenStack release is refused before any write.
                guard = release_reasons(comp.values, obs.config, comp.allow_release_change)
                if refused(guard):
                    kind = ActionKind.blocked
                reasons = [*guard, *reasons]
            suspension = suspension_for(desired, comp, suspensions)
            if suspension is not None:  # frozen: never written, never blocked (issue 13)
                if pending_change(kind, state):
                    frozen_changes.add(name)
                kind, state, reasons = freeze(suspension, kind, reasons)
            elif kind in (ActionKind.install, ActionKind.upgrade, ActionKind.unlock) and (
                waiting := suspended_needs(comp.needs, frozen_changes)
            ):
                reasons, kind = waiting + reasons, ActionKind.blocked
            blocked_by = [n for n in comp.needs if actions[n].action is ActionKind.blocked]
            if blocked_by and kind is not ActionKind.blocked and suspension is None:
                reasons = [Reason("need_blocked", MSG_NEED_BLOCKED.format(need=n)) for n in blocked_by] + reasons
                kind = ActionKind.blocked
            actions[name] = Action(
                component=name,
                release=comp.release,
                namespace=comp.namespace,
                action=kind,
                reasons=tuple(reasons),
                state=state,
                needs=comp.needs,
                wave=wave_no,
                digest=comp.digest,
                revision=obs.revision if obs else None,
                last_deployed=obs.last_deployed if obs else None,
            )
    ordered = [actions[name] for wave in waves for name in wave]
    return Plan(cluster=desired.name, commit=desired.commit, actions=tuple(ordered))
