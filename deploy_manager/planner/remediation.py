"""What to do about a failed install/upgrade once its attempts are used up (pure; issue 10).

`on_failure` from cluster.yaml (component, else cluster) decides; unset, an upgrade is rolled back and a
failed first install is uninstalled. A rollback needs a revision that was deployed: a release that never
deployed is uninstalled instead (there is nothing to return to but its absence).
"""

from __future__ import annotations

from deploy_manager.models.plan import ActionKind


def remediation_for(on_failure: str | None, last_deployed: int | None) -> ActionKind | None:
    """The remediation step's kind, or None to leave the failed release as it is."""
    if on_failure == "none":
        return None
    if on_failure == "uninstall" or last_deployed is None:
        return ActionKind.uninstall
    return ActionKind.rollback
