"""A run's checks read back from its steps (what notifications and summaries count; issue 14)."""

from __future__ import annotations

from deploy_manager.models.plan import Reason
from deploy_manager.models.run import StepRecord, StepStatus
from deploy_manager.models.smoke import SmokeStatus, check_results, status_reason, step_check_status
from deploy_manager.planner.smoke import counts, summary


def test_check_results_from_a_runs_steps() -> None:
    steps = [
        StepRecord("keystone", "keystone", "os", "upgrade", StepStatus.succeeded),
        StepRecord(
            "keystone",
            "",
            "os",
            "smoke:token-issue",
            StepStatus.succeeded,
            reasons=(status_reason(SmokeStatus.passed, "passed in 1.0s"),),
        ),
        StepRecord(
            "nova",
            "",
            "os",
            "smoke:server-boot",
            StepStatus.failed,
            reasons=(status_reason(SmokeStatus.slow, "passed in 9.0s, slower than its SLA of 5s"),),
        ),
        StepRecord(
            "cinder",
            "",
            "os",
            "smoke:volume-attach",
            StepStatus.blocked,
            reasons=(Reason("need_failed", "cinder failed"),),
        ),
    ]
    results = check_results(steps)
    assert results == {"token-issue": SmokeStatus.passed, "server-boot": SmokeStatus.slow}
    assert counts(results.values()) == {"passed": 1, "failed": 0, "slow": 1, "error": 0}
    assert summary(results) == "1 of 2 checks failed: server-boot (slow)"
    assert step_check_status("upgrade", steps[1].reasons) is None
