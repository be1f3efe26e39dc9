"""The service's drift checks (issue 13): periodic (`DM_DRIFT_INTERVAL_SECONDS`) and after each run.

`DriftMonitor.check()` loads the drift settings at the deployed commit (under the queue's git lock), then
observes the release records and lists each (kind, namespace) once (outside it). The last report is what
`/releases` (`drift`, `drifted`), the status page and `deploy_manager_release_drifted{cluster,component}`
show. A periodic check that finds drift in a component with `drift.mode: correct` triggers a `drift` run,
whose plan corrects it (`correct_drift`); the check after a run never does, so a correction that keeps
failing cannot loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from deploy_manager.drift import ComponentDrift, DriftReport
from deploy_manager.models.errors import QueueStopping

log = logging.getLogger(__name__)


class DriftMonitor:
    def __init__(self, queue: Any, *, cluster: str) -> None:
        self.queue = queue
        self.cluster = cluster
        self._lock = threading.Lock()  # one check at a time (the scheduler's and the worker's)
        self.report: DriftReport | None = None
        self.last_error: str | None = None

    def component(self, name: str) -> ComponentDrift | None:
        report = self.report
        return report.components.get(name) if report is not None else None

    def drifted(self) -> list[tuple[str, str, int]]:
        """(cluster, component, 0|1) for the metric; nothing before the first check."""
        report = self.report
        if report is None:
            return []
        return [(self.cluster, c.component, int(c.drifted)) for c in report.components.values()]

    def check(self, *, correct: bool = False) -> DriftReport | None:
        """One drift check; `correct`: trigger a run if a `mode: correct` component drifted."""
        pipeline = self.queue.pipeline
        desired_of: Callable[..., Any] | None = getattr(pipeline, "desired", None)
        drift_of: Callable[..., DriftReport] | None = getattr(pipeline, "drift_of", None)
        if desired_of is None or drift_of is None:
            return None  # a stand-in pipeline (HTTP unit tests)
        with self._lock:
            rev = self.queue.deployed_commit or self.queue.branch
            try:
                with self.queue.git_lock:
                    desired = desired_of(self.queue.source, self.cluster, rev)
                report = drift_of(desired)
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                raise
            self.report, self.last_error = report, None
            self.queue.releases_version += 1  # /releases shows it
        drifted = [c for c in report.components.values() if c.drifted]
        if drifted:
            log.warning(
                "drift in %s: %s",
                ", ".join(c.component for c in drifted),
                "; ".join(i.describe() for c in drifted for i in c.items)[:2000],
            )
        # One drift run at a time: while a run waits or runs, another trigger would only keep deferring it.
        idle = self.queue.depth == 0 and self.queue.running_run_id is None
        if correct and idle and any(c.mode == "correct" for c in drifted):
            try:
                result = self.queue.trigger("drift", force=True)
                log.info("drift to correct: run %s %s", result.run_id, result.status)
            except QueueStopping:
                pass
        return report

    def periodic(self) -> None:
        self.check(correct=True)

    def after_run(self) -> None:
        try:
            self.check()
        except Exception as exc:  # the run is recorded already; the next periodic check tries again
            log.warning("drift check after the run failed: %s: %s", type(exc).__name__, exc)
