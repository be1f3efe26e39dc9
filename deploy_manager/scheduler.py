"""Polling and periodic observe with APScheduler 3 (`BackgroundScheduler`).

Contract:
- `poll` job: every `DM_POLL_INTERVAL_SECONDS` (plus a random jitter, so replicas and clusters sharing one git
  server do not fetch in lockstep) fetch the remote into the bare mirror; a new commit on `DM_BRANCH` triggers
  a run (`RunQueue.poll`). 0 disables polling.
- `observe` job: every `DM_OBSERVE_INTERVAL_SECONDS` refresh the stored releases from the cluster, so /releases
  shows drift and failed releases between runs. 0 disables it.
- `smoke` job: every `DM_SMOKE_TICK_SECONDS`, run the workflow checks whose `schedule` is due
  (`RunQueue.run_scheduled_checks`: between runs only, never overlapping one). 0 disables it.
- `drift` job: every `DM_DRIFT_INTERVAL_SECONDS` compare the live objects with the release manifests
  (`DriftMonitor.periodic`). 0 disables it.
- A job never overlaps itself (`max_instances=1`) and missed runs collapse into one (`coalesce=True`);
  an exception in a job is logged and the next interval tries again.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from deploy_manager.service import RunQueue

log = logging.getLogger(__name__)


def _guarded(name: str, fn: Callable[[], object]) -> Callable[[], None]:
    def job() -> None:
        try:
            fn()
        except Exception as exc:
            # One line, not a traceback per interval while the remote is down.
            log.warning("%s failed: %s: %s", name, type(exc).__name__, exc)

    return job


class ServiceScheduler:
    """The background jobs of one service instance."""

    def __init__(
        self,
        queue: RunQueue,
        *,
        poll_interval: float,
        poll_jitter: float = 0.0,
        observe_interval: float = 0.0,
        smoke_interval: float = 0.0,
        drift_interval: float = 0.0,
        drift_check: Callable[[], object] | None = None,
    ) -> None:
        self.queue = queue
        self.scheduler = BackgroundScheduler(timezone=dt.UTC, job_defaults={"max_instances": 1, "coalesce": True})
        if poll_interval > 0:
            self._every(
                poll_interval,
                "poll",
                _guarded("poll", queue.poll),
                "fetch the values repo; trigger a run on a new commit",
                jitter=poll_jitter or None,
            )
        if observe_interval > 0:
            job = _guarded("observe", queue.refresh_releases)
            self._every(observe_interval, "observe", job, "refresh /releases from the cluster")
        if drift_interval > 0 and drift_check is not None:
            self._every(
                drift_interval,
                "drift",
                _guarded("drift check", drift_check),
                "compare live objects with the release manifests",
            )

        if smoke_interval > 0:
            # Each check has its own `schedule`; this tick only looks for due ones (cheap when none is due).
            self._every(
                smoke_interval,
                "smoke",
                _guarded("smoke", queue.run_scheduled_checks),
                "run the workflow checks whose schedule is due, between runs",
            )

    def _every(
        self, seconds: float, job_id: str, job: Callable[[], None], name: str, *, jitter: float | None = None
    ) -> None:
        """An interval job; a run missed by up to one interval still runs (then coalesces)."""
        self.scheduler.add_job(
            job,
            IntervalTrigger(seconds=seconds, jitter=jitter, timezone=dt.UTC),
            id=job_id,
            name=name,
            misfire_grace_time=max(1, int(seconds)),
        )

    @property
    def job_ids(self) -> list[str]:
        return [job.id for job in self.scheduler.get_jobs()]

    def start(self) -> None:
        if not self.scheduler.running:
            self.scheduler.start()

    def shutdown(self) -> None:
        if self.scheduler.running:
            # Do not wait: a poll in the middle of a slow fetch must not hold up the pod's shutdown.
            self.scheduler.shutdown(wait=False)
