"""What a failed install/upgrade turns into once its attempts are used up (pure)."""

from __future__ import annotations

import pytest

from deploy_manager.models.plan import ActionKind
from deploy_manager.planner.remediation import remediation_for


@pytest.mark.parametrize(
    ("on_failure", "last_deployed", "expected"),
    [
        (None, 3, ActionKind.rollback),  # default for an upgrade: back to the last deployed revision
        (None, None, ActionKind.uninstall),  # default for a failed first install
        ("rollback", 3, ActionKind.rollback),
        ("rollback", None, ActionKind.uninstall),  # nothing was ever deployed: its absence is what it returns to
        ("uninstall", 3, ActionKind.uninstall),
        ("none", 3, None),
        ("none", None, None),
    ],
)
def test_remediation_for(on_failure: str | None, last_deployed: int | None, expected: ActionKind | None) -> None:
    assert remediation_for(on_failure, last_deployed) is expected
