"""Workflow checks outside a run (issue 14): `deploy-manager smoke` and the service's schedule.

`select` picks the checks (all, by name, or the scheduled ones); `run_checks` runs them in parallel through the
Job runner, judges each (`planner.smoke.verdict`) and stores the results. Nothing here rolls back: a check
between runs reports (`GET /smoke`, the metrics, /releases health); only a run remediates what it wrote.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from deploy_manager.desired.smoke import smoke_files
from deploy_manager.models.desired import DesiredCluster
from deploy_manager.models.errors import ConfigError
from deploy_manager.models.smoke import CheckOutcome, SmokeCheck, SmokeResult
from deploy_manager.planner.smoke import verdict
from deploy_manager.reconcile.step import CheckRunner

log = logging.getLogger(__name__)


class SmokeStore(Protocol):
    def add_smoke(self, result: SmokeResult) -> int: ...


def select(desired: DesiredCluster, names: Sequence[str] | None, *, scheduled: bool = False) -> list[SmokeCheck]:
    """The checks to run now; an unknown name is an error naming the files that declare checks."""
    checks = list(desired.smoke)
    if scheduled:
        checks = [c for c in checks if c.schedule]
    if names:
        known = {c.name for c in checks}
        unknown = [n for n in names if n not in known]
        if unknown:
            files = " or ".join(smoke_files(desired.name))
            raise ConfigError(f"no check {unknown[0]!r} in {files} at commit {desired.commit[:12]}")
        checks = [c for c in checks if c.name in names]
    return checks


def result_of(cluster: str, check: SmokeCheck, outcome: CheckOutcome, run_id: int | None) -> SmokeResult:
    status = verdict(outcome.ok, outcome.duration, check.sla)
    return SmokeResult(
        cluster=cluster,
        name=check.name,
        component=check.component,
        status=status,
        duration=outcome.duration,
        finished_at=outcome.finished_at,
        run_id=run_id,
        log_tail=outcome.log_tail,
        started_at=outcome.started_at,
        error="" if status.ok else f"{status.value}: {outcome.message}",
        job=outcome.job,
        sla=check.sla,
    )


def run_checks(
    runner: CheckRunner,
    desired: DesiredCluster,
    checks: Sequence[SmokeCheck],
    *,
    store: SmokeStore | None,
    max_parallel: int = 4,
) -> list[SmokeResult]:
    """Run `checks` now (in parallel), store and return their results, in the given order."""

    def one(check: SmokeCheck) -> SmokeResult:
        try:
            outcome = runner(check, desired, None)
        except Exception as exc:  # a runner bug is this check's error, not the others'
            outcome = CheckOutcome(None, 0.0, f"{type(exc).__name__}: {exc}")
        result = result_of(desired.name, check, outcome, None)
        log.info(
            "cluster=%s check=%s status=%s duration=%.2f", desired.name, check.name, result.status, result.duration
        )
        if store is not None:
            store.add_smoke(result)
        return result

    if not checks:
        return []
    ctx = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(checks))), thread_name_prefix="dm-smoke") as pool:
        return list(pool.map(lambda c: ctx.copy().run(one, c), checks))
