"""Determine one release's state from its desired component and its newest observed revision (pure).

States: absent, locked (pending-*), failed, drifted (changed outside deploy-manager), out-of-sync
(our digest differs), in-sync. Change is detected by digest labels we record on the release; the
deployed `config` values and chart version are compared only to *explain* a difference (value paths)
and to catch a change made behind our back, which keeps our labels because helm merges release labels.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from deploy_manager.models.desired import DesiredComponent
from deploy_manager.models.observed import ObservedRelease
from deploy_manager.models.plan import Reason, ReleaseState
from deploy_manager.planner.diff import diff_paths

# Message formats as constants, so tests and docs agree with the code.
MSG_ABSENT = "release {release} is not installed in {namespace}"
MSG_LOCKED = "release is {status} at revision {revision}: another helm operation is in progress or was interrupted"
MSG_FAILED = "last attempt failed (revision {revision}): {description}"
MSG_UNMANAGED = "revision {revision} was not made by deploy-manager ({description})"
MSG_ROLLBACK = "release rolled back outside deploy-manager at revision {revision}: {description}"
MSG_OUTSIDE = "release changed outside deploy-manager at revision {revision}"
MSG_VALUES = "values changed: {paths}"
MSG_CHART_VERSION = "chart version changed: {old} -> {new}"
MSG_CHART_NAME = "chart changed: {old} -> {new}"
MSG_CHART_CONTENT = "chart content changed: {chart}"
MSG_BOOTSTRAP = "bootstrap steps changed"
MSG_SETTINGS = "deploy settings changed (digest {old} -> {new})"
MSG_UNLOCK_ROLLBACK = "no operation is running on it: roll back to revision {to}, then write it again"
MSG_UNLOCK_UNINSTALL = "no operation is running on it and it never deployed: uninstall it, then install it again"
MSG_LOCKED_LEASE = "another manager holds the cluster Lease and may be writing it"
MSG_LOCKED_PERSON = (
    "revision {revision} was not made by deploy-manager and is younger than its timeout ({timeout}s): "
    "a helm command may still be writing it"
)

_MAX_PATHS_IN_MESSAGE = 5
PENDING = ("pending-install", "pending-upgrade", "pending-rollback")
GONE = ("uninstalled", "uninstalling")


def _paths_text(paths: list[str]) -> str:
    shown = ", ".join(paths[:_MAX_PATHS_IN_MESSAGE])
    extra = len(paths) - _MAX_PATHS_IN_MESSAGE
    return f"{shown} (+{extra} more)" if extra > 0 else shown


def diff_reasons(desired: DesiredComponent, observed: ObservedRelease) -> list[Reason]:
    """What differs between the deployed release and the desired component, most specific first."""
    reasons: list[Reason] = []
    chart = desired.chart
    if observed.chart_name and chart.name and observed.chart_name != chart.name:
        reasons.append(Reason("chart_changed", MSG_CHART_NAME.format(old=observed.chart_name, new=chart.name)))
    elif observed.chart_version and chart.chart_version and observed.chart_version != chart.chart_version:
        reasons.append(
            Reason(
                "chart_version_changed",
                MSG_CHART_VERSION.format(old=observed.chart_version, new=chart.chart_version),
            )
        )
    elif observed.labels.get("chart") not in (None, chart.digest):
        reasons.append(Reason("chart_content_changed", MSG_CHART_CONTENT.format(chart=chart.describe())))
    paths = diff_paths(observed.config or {}, desired.values)
    if paths:
        reasons.append(Reason("values_changed", MSG_VALUES.format(paths=_paths_text(paths)), tuple(paths)))
    deployed_bootstrap = observed.labels.get("bootstrap", "")
    if deployed_bootstrap == "null":  # helm stores an unset request literally on install
        deployed_bootstrap = ""
    if deployed_bootstrap != desired.bootstrap_digest and "digest" in observed.labels:
        reasons.append(Reason("bootstrap_changed", MSG_BOOTSTRAP))
    return reasons


def determine_state(desired: DesiredComponent, observed: ObservedRelease | None) -> tuple[ReleaseState, list[Reason]]:
    if observed is None or observed.status in GONE:
        return ReleaseState.absent, [
            Reason("absent", MSG_ABSENT.format(release=desired.release, namespace=desired.namespace))
        ]
    fmt = {"revision": observed.revision, "status": observed.status, "description": observed.description}
    if observed.status in PENDING:
        return ReleaseState.locked, [Reason("locked", MSG_LOCKED.format(**fmt))]
    diffs = diff_reasons(desired, observed)
    if observed.status != "deployed":
        return ReleaseState.failed, [Reason("last_failed", MSG_FAILED.format(**fmt)), *diffs]
    if "digest" not in observed.labels:
        return ReleaseState.drifted, [Reason("not_managed", MSG_UNMANAGED.format(**fmt)), *diffs]
    if observed.description.startswith("Rollback to"):
        return ReleaseState.drifted, [Reason("rolled_back", MSG_ROLLBACK.format(**fmt)), *diffs]
    if observed.digest == desired.digest:
        # Our labels match, yet what is deployed differs: a `helm upgrade` by hand (labels are merged).
        if diffs:
            return ReleaseState.drifted, [Reason("changed_outside", MSG_OUTSIDE.format(**fmt)), *diffs]
        return ReleaseState.in_sync, []
    if not diffs:
        diffs = [Reason("settings_changed", MSG_SETTINGS.format(old=observed.digest, new=desired.digest))]
    return ReleaseState.out_of_sync, diffs


_FRACTION = re.compile(r"(\.\d{1,6})\d*")


def parse_time(text: str) -> datetime | None:
    """Helm's `info.last_deployed` (RFC 3339, nanoseconds) or a `modifiedAt` label (Unix seconds); None if neither."""
    text = text.strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text), UTC)
    try:
        parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", text.replace("Z", "+00:00")))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def unlock_verdict(
    desired: DesiredComponent, observed: ObservedRelease, *, now: datetime, lease_held: bool
) -> tuple[bool, list[Reason]]:
    """May a pending (locked) release be recovered now? (True, why) to unlock it, (False, why) to leave it alone.

    Its operation is provably dead when we hold the cluster's Lease and the pending revision is ours (only a
    Lease holder writes our labels). A pending revision without our labels may be a person's own `helm`
    command: it is left alone until it is older than the component's timeout.
    """
    if not lease_held:
        return False, [Reason("locked", MSG_LOCKED_LEASE)]
    if not observed.ours:
        started = parse_time(observed.updated)
        if started is None or (now - started).total_seconds() < desired.timeout:
            return False, [
                Reason("locked", MSG_LOCKED_PERSON.format(revision=observed.revision, timeout=desired.timeout))
            ]
    if observed.last_deployed is None:
        return True, [Reason("unlock", MSG_UNLOCK_UNINSTALL)]
    return True, [Reason("unlock", MSG_UNLOCK_ROLLBACK.format(to=observed.last_deployed))]
