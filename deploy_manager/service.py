"""The run queue: per cluster at most one run executes; triggers during a run collapse into one pending run.

Contract:
- `RunQueue.trigger(kind, rev=None, commit=None)` never does I/O beyond one store insert and returns at once
  with `TriggerResult(run_id, status)`:
  * `coalesced` when it adds nothing: the commit is the one running, the one pending, or (nothing running or
    pending) the one last deployed successfully; or a run is already pending — that run is re-targeted to
    this newest trigger and its id returned.
  * `queued` when a new run record was created (status `queued` in the store).
- What a run deploys: without `rev` the head of the branch *as fetched when the run starts* (so a storm of
  pushes ends with the newest commit deployed, whatever order the webhooks arrived in); with `rev` exactly
  that revision (`POST /runs` with a revision).
- Bursts: a trigger after `quiet_seconds` without triggers starts at once (low latency); a run queued inside
  a burst waits until no trigger came for `quiet_seconds` (at most `max_delay_seconds` after it was queued),
  so a storm of pushes costs at most two runs: the one already running and one for the storm's end state.
- One worker thread per queue executes runs: hold the cluster Lease (other instances wait), fetch the mirror,
  resolve once, `pipeline.run(..., run_id=...)` (which neither resolves again nor re-plans), and store the
  release statuses the run returns.
- `resolve_revision(rev)` fetches and resolves under the same git lock: the HTTP layer checks an explicit
  revision with it before calling `trigger`, so an unknown revision is refused and queues no run.
- `poll()` fetches and triggers `poll` when the branch head moved since the last poll (and is not deployed).
  A run of an explicit older revision therefore stays deployed until the next commit or trigger.
- `start()` marks runs a dead process left `running` as `interrupted` and, in the worker, re-plans the branch
  head once: a `startup` run if something was interrupted or the plan has anything to do, else none (the
  release records in the cluster are the truth, not our database), so a restart neither loses nor doubles
  work.
- `stop()` lets a running helm command finish (up to `grace_seconds`); it never kills helm.
- Retries (`retry`, DM_RETRY_*; issue 10): a run that failed only on temporary errors is triggered again
  (`retry`) with exponential backoff and jitter; any failed run (a remediated one included) is retried at a
  slow interval even without a push; both capped per commit (`retry.next_run_retry`, pure). A success or
  the next run of any trigger replaces the pending retry. Counted in `deploy_manager_retries_total{reason}`.
- `stop()` drains (SIGTERM): triggers are refused at once (`QueueStopping`: the HTTP layer answers 503 with
  Retry-After), the running run starts no new component, helm command or bootstrap phase (`RunCancel`), and
  the running helm commands and bootstrap Jobs finish, up to `grace_seconds`. Past it the helm commands are
  ended with SIGTERM (helm 4 then marks the release `failed`, which the next run recovers) and the run is
  recorded `interrupted`. The Lease is released as the worker leaves the run; nothing else is started.
- Self-management (issue 15; the pipeline's `self_release`, DM_SELF_RELEASE): a run that writes the manager's own
  release writes it last without waiting on itself and ends `handed_over`. This queue then takes no run (triggers
  get `QueueStopping`, 503) until the Deployment replaces the pod; at start-up the new pod finishes the handed-over
  run (`_startup_handover`: the store's run, or one recorded from its release's `handover` label) before the usual
  re-plan. A pod not replaced within `handover_wait_seconds` finishes the run itself (its `verify` step fails,
  saying why) and goes on.
- Supersede (`supersede=True`, DM_SUPERSEDE): while a run has a component inside `helm upgrade --wait` and a
  newer commit is pending that changes that component (another digest), the run is stopped (`superseded`),
  that helm command is ended as above, and the pending run starts as soon as the running steps are done.
  Bootstrap Jobs are never ended: a migration runs to its end, then nothing further starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

from deploy_manager.checks import run_checks
from deploy_manager.lease import ClusterLease, LeaseRejected
from deploy_manager.logging_setup import log_context
from deploy_manager.metrics import ServiceMetrics
from deploy_manager.models.errors import DeployManagerError, QueueStopping, UnknownRevision
from deploy_manager.models.plan import Plan
from deploy_manager.models.run import ReleaseStatus, RunRecord, RunStatus
from deploy_manager.planner.selfmanage import TRIGGER_HANDOVER, handover_target
from deploy_manager.planner.smoke import due as smoke_due
from deploy_manager.reconcile.cancel import RunCancel
from deploy_manager.retry import RunRetryPolicy, next_run_retry
from deploy_manager.source.git import is_full_sha

log = logging.getLogger(__name__)

TriggerStatus = Literal["queued", "coalesced", "ignored"]
WRITE_ACTIONS = frozenset({"install", "upgrade", "unlock", "rollback", "correct_drift"})


class SourceLike(Protocol):
    def fetch(self) -> None: ...
    def resolve(self, rev: str) -> str: ...


class StoreLike(Protocol):
    def create_run(self, *, cluster: str, commit: str | None, trigger: str, status: str = "queued") -> int: ...
    def start_run(self, run_id: int, *, commit: str | None) -> None: ...
    def list_runs(self, *, cluster: str | None = None, limit: int = 50) -> list[RunRecord]: ...
    def get_run(self, run_id: int) -> RunRecord | None: ...
    def mark_interrupted(self) -> int: ...
    def replace_releases(self, cluster: str, releases: list[ReleaseStatus]) -> None: ...
    def list_releases(self, cluster: str) -> list[ReleaseStatus]: ...
    def finish_run(self, run_id: int, status: RunStatus, *, error: str = "", commit: str | None = None) -> None: ...


class RunOutcomeLike(Protocol):
    @property
    def record(self) -> RunRecord: ...
    @property
    def releases(self) -> list[ReleaseStatus] | None: ...


class PipelineLike(Protocol):
    """What the queue needs of the pipeline (`deploy_manager.pipeline.Pipeline`)."""

    def run(
        self,
        source: Any,
        cluster: str,
        rev: str,
        *,
        trigger: str,
        run_id: int | None = None,
        cancel: RunCancel | None = None,
    ) -> RunOutcomeLike: ...
    def observe(self, cluster: str, source: Any, rev: str) -> list[ReleaseStatus]: ...
    def plan(self, source: Any, cluster: str, rev: str) -> Plan: ...
    def plan_diff(self, source: Any, cluster: str, rev: str) -> tuple[Plan, list[Any]]: ...


class RunObserver(Protocol):
    """Told when a run has resolved its commit and when it has ended (`deploy_manager.notify.RunNotifier`).
    Both calls must return at once (they only queue work); an exception is logged and ignored."""

    def run_started(self, run_id: int, commit: str) -> None: ...
    def run_finished(self, run_id: int) -> None: ...


@dataclasses.dataclass(frozen=True)
class TriggerResult:
    run_id: int | None
    status: TriggerStatus
    reason: str = ""


@dataclasses.dataclass
class _Request:
    run_id: int
    trigger: str
    rev: str | None  # None: the branch head at run time
    commit: str | None  # the commit the trigger named (a hint for coalescing), if any
    queued_at: float = 0.0
    deferred: bool = False  # queued inside a burst of triggers: starts once they are quiet
    resolved: str | None = None  # the commit actually deployed, once known
    temporary: bool = False  # the run failed only on temporary errors (a quick retry may succeed)
    handover: bool = False  # finish a handed-over run (the manager's own release, issue 15), not a new run
    handed_over_at: str | None = None  # the commit the own release was handed over at, when not `rev` (no store)


def _status_value(status: Any) -> str:
    return str(getattr(status, "value", status))


def superseded_components(in_helm: dict[str, str], newer: dict[str, str]) -> set[str]:
    """The components waiting in helm (component -> digest being written) that the newer commit changes
    (component -> its digest there). A component the newer commit drops is left to finish."""
    return {name for name, digest in in_helm.items() if name in newer and newer[name] != digest}


# After the grace period, the time helm gets to record its release as failed before the worker is abandoned.
END_HELM_SECONDS = 30.0
SUPERSEDE_CHECK_SECONDS = 1.0


class RunQueue:
    """One cluster's run queue and its worker thread (see module docstring)."""

    def __init__(
        self,
        *,
        cluster: str,
        branch: str,
        pipeline: PipelineLike,
        store: StoreLike,
        source: SourceLike | None = None,
        source_factory: Callable[[], SourceLike] | None = None,
        lease: ClusterLease | None = None,
        metrics: ServiceMetrics | None = None,
        grace_seconds: float = 600.0,
        quiet_seconds: float = 0.0,
        max_delay_seconds: float = 60.0,
        supersede: bool = True,
        clock: Callable[[], float] = time.monotonic,
        retry: RunRetryPolicy | None = None,
        handover_wait_seconds: float = 600.0,
        observer: RunObserver | None = None,
    ) -> None:
        self.cluster = cluster
        self.observer = observer  # commit statuses and notifications (issue 14), off the run's path
        self.branch = branch
        # A factory defers the first clone of a remote to the worker, so start-up never waits on the network.
        if (source is None) == (source_factory is None):
            raise ValueError("pass exactly one of source and source_factory")
        self._source = source
        self._source_factory = source_factory
        self._source_lock = threading.Lock()
        self.pipeline = pipeline
        self.store = store
        self.lease = lease
        self.metrics = metrics or ServiceMetrics()
        self.grace_seconds = grace_seconds
        self.quiet_seconds = quiet_seconds
        self.max_delay_seconds = max_delay_seconds
        self._last_trigger = float("-inf")
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: _Request | None = None
        self._running: _Request | None = None
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None
        # Serialises fetch/resolve on the mirror between the worker, the poller and the observer.
        self.git_lock = threading.Lock()
        self._deployed: str | None = None
        self._last_run_id: int | None = None
        self._last_polled: str | None = None
        self.last_fetch_error: str | None = None
        self._interrupted = 0
        self._starting = False
        self._release_runs: dict[tuple[str, str], int] = {}
        self.retry = retry  # None: failed runs wait for the next trigger
        self._retry_timer: threading.Timer | None = None
        self._retry_counts: tuple[str | None, int, int] = (None, 0, 0)  # commit, fast and slow retries of it
        # Bumped whenever the stored releases (or their last runs) may have changed: /releases caches by it.
        self.releases_version = 0
        # Called by the worker after each run (the drift check, issue 13); None: nothing.
        self.after_run: Callable[[], None] | None = None
        self.drift_monitor: Any = None  # its last report is shown by /releases and the status page
        self.metrics.watch_releases(self._release_statuses)
        self.supersede = supersede
        # After a run handed over to the manager's next pod: (run id, commit, when). No run starts meanwhile.
        self.handover_wait_seconds = handover_wait_seconds
        self._handed_over: tuple[int, str, float] | None = None
        self._cancel: RunCancel | None = None  # the running run's, set under `_cond`
        self._supersede_wake = threading.Event()
        self._superseder: threading.Thread | None = None
        # Scheduled workflow checks (issue 14): True while they run; the worker starts no run meanwhile.
        self._checking = False
        self._smoke_last: dict[str, float] = {}  # check -> when (clock) it last finished on the schedule
        self._smoke_desired: tuple[str, Any] | None = None  # (commit, its DesiredCluster), loaded once per commit
        # The last pending request checked: ((run id, rev, commit), its commit, component -> digest there).
        self._supersede_seen: tuple[tuple[int, str | None, str | None], str, dict[str, str]] | None = None

    @property
    def source(self) -> SourceLike:
        """The git source, created on first use (a remote is cloned into the mirror then)."""
        if self._source is None:
            with self._source_lock:
                if self._source is None:
                    assert self._source_factory is not None
                    self._source = self._source_factory()
        return self._source

    # ---- state -------------------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        return 1 if self._pending is not None else 0

    @property
    def running_run_id(self) -> int | None:
        running = self._running
        return running.run_id if running else None

    @property
    def deployed_commit(self) -> str | None:
        return self._deployed

    @property
    def handed_over(self) -> bool:
        """This pod wrote its own release and waits to be replaced by the new one (issue 15): no run starts."""
        return self._handed_over is not None

    @property
    def stopping(self) -> bool:
        """Draining: new triggers are refused (503), nothing new starts."""
        return self._stopping.is_set()

    def _release_statuses(self) -> list[str]:
        try:
            return [_status_value(r.status) for r in self.store.list_releases(self.cluster)]
        except Exception:  # a scrape must not fail because the store is busy
            log.exception("reading releases for metrics failed")
            return []

    def last_run_for(self, namespace: str, release: str) -> int | None:
        """The newest run that installed or upgraded this release (for /releases)."""
        return self._release_runs.get((namespace, release))

    def _note_release_runs(self, run: RunRecord) -> None:
        for step in run.steps:
            if step.action in WRITE_ACTIONS:
                self._release_runs[(step.namespace, step.release)] = run.id

    def _load_history(self) -> None:
        """The last successfully deployed commit and each release's last run, from the run history."""
        runs = self.store.list_runs(cluster=self.cluster, limit=200)
        for run in reversed(runs):  # oldest first, so newer runs win
            self._note_release_runs(run)
        for run in runs:
            if _status_value(run.status) == "succeeded" and run.commit:
                self._deployed = run.commit
                self._last_run_id = run.id
                with contextlib.suppress(TypeError, ValueError):  # the gauge survives a restart
                    self.metrics.last_success.set(dt.datetime.fromisoformat(run.finished_at or "").timestamp())
                return

    # ---- triggers ----------------------------------------------------------------------------------------

    def trigger(
        self, kind: str, *, rev: str | None = None, commit: str | None = None, force: bool = False
    ) -> TriggerResult:
        """Enqueue (or coalesce) a run; see the module docstring. Never blocks on a run."""
        if rev is not None and is_full_sha(rev) and commit is None:
            commit = rev
        with self._cond:
            if self._stopping.is_set():
                raise QueueStopping("the service is shutting down: no new runs")
            if self._handed_over is not None:
                raise QueueStopping("the manager is being replaced by its new version (run handed over): retry shortly")
            pending, running = self._pending, self._running
            now, previous_trigger = self._clock(), self._last_trigger
            self._last_trigger = now
            self._cond.notify_all()  # a deferred run re-computes when it may start
            if commit is not None and not force:
                if pending is not None and pending.commit == commit and pending.rev == rev:
                    return self._coalesced(kind, pending.run_id, "already queued")
                if running is not None and commit in (running.resolved, running.commit) and pending is None:
                    return self._coalesced(kind, running.run_id, "already running")
                if running is None and pending is None and commit == self._deployed:
                    return self._coalesced(kind, self._last_run_id, "already deployed")
            if pending is not None:
                # Newest trigger wins: the one pending run now deploys what this trigger asked for.
                pending.rev, pending.commit = rev, commit
                self._supersede_wake.set()
                return self._coalesced(kind, pending.run_id, "joined the pending run")
            run_id = self.store.create_run(cluster=self.cluster, commit=commit, trigger=kind, status="queued")
            # Leading edge: after a quiet spell a trigger starts at once; inside a burst it waits for the end.
            deferred = now - previous_trigger < self.quiet_seconds
            self._pending = _Request(run_id, kind, rev, commit, queued_at=now, deferred=deferred)
            self.metrics.queue_depth.set(1)
            self.metrics.triggers.labels(kind, "queued").inc()
            self._cond.notify_all()
            if running is not None:
                self._supersede_wake.set()
        log.info("run queued", extra={"run_id": run_id, "trigger": kind, "commit": commit, "rev": rev})
        return TriggerResult(run_id, "queued")

    def _coalesced(self, kind: str, run_id: int | None, reason: str) -> TriggerResult:
        self.metrics.triggers.labels(kind, "coalesced").inc()
        log.info("trigger coalesced: %s", reason, extra={"run_id": run_id, "trigger": kind})
        return TriggerResult(run_id, "coalesced", reason)

    def fetch_head(self) -> str:
        """Fetch the mirror and resolve the branch head (serialised with the worker)."""
        with self.git_lock:
            try:
                self.source.fetch()
            except Exception as exc:
                self.last_fetch_error = str(exc)
                raise
            self.last_fetch_error = None
            return self.source.resolve(self.branch)

    def resolve_revision(self, rev: str) -> str:
        """Fetch, then resolve `rev` in the mirror (serialised with the worker), so a trigger naming a revision
        is checked before anything is queued; a full commit id the mirror already has needs no fetch. Raises
        `UnknownRevision` when the mirror does not have it after a successful fetch; when the fetch failed and
        the mirror does not have it, the fetch error (temporary)."""
        with self.git_lock:
            if is_full_sha(rev):  # a commit id the mirror already has cannot change: no fetch needed
                with contextlib.suppress(UnknownRevision):
                    return self.source.resolve(rev)
            fetch_error: Exception | None = None
            try:
                self.source.fetch()
                self.last_fetch_error = None
            except Exception as exc:
                self.last_fetch_error = str(exc)
                fetch_error = exc
            try:
                return self.source.resolve(rev)
            except UnknownRevision:
                if fetch_error is not None:
                    raise fetch_error from None
                raise

    def poll(self, *, force: bool = False) -> TriggerResult | None:
        """Fetch; a branch head not seen by the previous poll triggers a `poll` run."""
        head = self.fetch_head()
        previous, self._last_polled = self._last_polled, head
        if head == previous and not force:
            return None
        return self.trigger("poll", commit=head, force=force)

    def refresh_releases(self) -> None:
        """Observe the cluster; the pipeline replaces the stored releases (/releases reads them)."""
        rev = self._deployed or self.branch
        try:
            self.pipeline.observe(self.cluster, self.source, rev)
        finally:
            self.releases_version += 1

    # ---- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._worker is not None:
            return
        # The runs a dead process left behind had a `pending` commit status: they get their final one (`error`).
        left = self._unfinished_runs() if self.observer is not None else []
        self._interrupted = self.store.mark_interrupted()
        if self._interrupted:
            log.warning("%d run(s) left running by a previous process marked interrupted", self._interrupted)
            for run_id in left:
                self._tell_observer("run_finished", run_id)
        self._load_history()
        self._starting = True
        self._worker = threading.Thread(target=self._work, name=f"run-queue-{self.cluster}", daemon=True)
        self._worker.start()
        if self.supersede:
            self._superseder = threading.Thread(
                target=self._watch_supersede, name=f"supersede-{self.cluster}", daemon=True
            )
            self._superseder.start()

    def stop(self) -> None:
        """Drain (see the module docstring): refuse triggers, start nothing new, let running helm commands and
        bootstrap Jobs finish up to grace_seconds, then end helm and record the run `interrupted`."""
        with self._cond:
            self._stopping.set()
            self._cond.notify_all()
            if self._retry_timer is not None:
                self._retry_timer.cancel()
            cancel = self._cancel
        self._supersede_wake.set()
        if cancel is not None:
            log.info("shutting down: the running run starts nothing new; running helm commands finish")
            cancel.stop(RunStatus.interrupted, "the service is shutting down")
        worker = self._worker
        if worker is None:
            return
        worker.join(timeout=self.grace_seconds)
        if worker.is_alive():
            log.error("a run is still executing after %ss: ending its helm commands (SIGTERM)", self.grace_seconds)
            with self._cond:
                cancel = self._cancel
            if cancel is not None:
                cancel.end_helm()
            worker.join(timeout=END_HELM_SECONDS)
            if worker.is_alive():
                log.error("the run did not end after its helm commands were ended; leaving it to the process exit")
        self._worker = None

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing runs or waits (tests, benchmarks, graceful shutdown)."""
        deadline = self._clock() + timeout
        with self._cond:
            while self._starting or self._pending is not None or self._running is not None:
                left = deadline - self._clock()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    # ---- the worker --------------------------------------------------------------------------------------

    def _next_request(self) -> _Request | None:
        """Wait for a pending request that may start now; None when stopping. Caller holds `_cond`."""
        while not self._stopping.is_set():
            if self._handed_over is not None:
                run_id, commit, since = self._handed_over
                left = since + self.handover_wait_seconds - self._clock()
                if left > 0:
                    self._cond.wait(left)  # the Deployment controller replaces this pod (Recreate)
                    continue
                # Not replaced: the new revision's pod never came (a paused Deployment, a template helm did not
                # apply). Finish the run here: its `verify` step records why it failed; then carry on.
                waited = self._clock() - since
                log.error("handed over run %s %.0fs ago and this pod was not replaced: finishing it", run_id, waited)
                self._handed_over = None
                return _Request(run_id, TRIGGER_HANDOVER, commit, commit, handover=True)
            request = self._pending
            if request is None or self._checking:  # scheduled checks never overlap a run: wait for them
                self._cond.wait()
                continue
            if request.deferred:
                # A follow-up run waits for the storm to calm down (bounded), so it deploys its end state.
                ready_at = min(self._last_trigger + self.quiet_seconds, request.queued_at + self.max_delay_seconds)
                left = ready_at - self._clock()
                if left > 0:
                    self._cond.wait(left)
                    continue
            self._pending = None
            return request
        return None

    def _work(self) -> None:
        self._startup_replan()
        while True:
            with self._cond:
                request = self._next_request()
                if request is None:
                    return
                self._running = request
                self._cancel = cancel = RunCancel()
                self.metrics.queue_depth.set(0)
                self.metrics.run_in_progress.set(1)
                if self._pending is not None:
                    self._supersede_wake.set()
            self._execute_running(request, cancel)

    def _startup_handover(self) -> None:
        """Finish the run the previous pod handed over when it wrote this manager's own release (issue 15)."""
        own_release = getattr(self.pipeline, "own_release", None)
        if own_release is None or getattr(self.pipeline, "self_release", None) is None:
            return
        try:
            runs = self.store.list_runs(cluster=self.cluster, limit=20)
            own = None  # the store has it, or the own release's labels say a handover wrote it (an emptyDir store)
            if not any(_status_value(r.status) == RunStatus.handed_over.value for r in runs):
                own = own_release()
            target = handover_target(runs, own)
        except Exception:
            log.exception("looking for a handed-over run failed; the start-up re-plan still runs")
            return
        if target is None:
            return
        if target.run_id is not None:  # the store's run: finished at its own commit
            request = _Request(target.run_id, TRIGGER_HANDOVER, target.commit, target.commit, handover=True)
        else:  # known from the release's label only: verify at that commit, deploy the branch head
            run_id = self.store.create_run(cluster=self.cluster, commit=None, trigger=TRIGGER_HANDOVER, status="queued")
            request = _Request(run_id, TRIGGER_HANDOVER, None, None, handover=True, handed_over_at=target.commit)
        log.info("finishing the run handed over at %s (run %s)", target.commit[:12], request.run_id)
        self._run_request(request)

    def _run_request(self, request: _Request) -> None:
        """Execute one request in the worker, as the running run."""
        with self._cond:
            self._running = request
            self._cancel = cancel = RunCancel()
            self.metrics.run_in_progress.set(1)
        self._execute_running(request, cancel)

    def _execute_running(self, request: _Request, cancel: RunCancel) -> None:
        """Execute the request the worker has just marked running; whatever happens, mark it done after (a
        crashed run is logged and the worker goes on: the record already says `failed`)."""
        try:
            with log_context(run_id=request.run_id):
                self._execute(request, cancel)
        except Exception:
            log.exception("run crashed", extra={"run_id": request.run_id})
        finally:
            with self._cond:
                self._running = None
                self._cancel = None
                self.metrics.run_in_progress.set(0)
                self._cond.notify_all()

    def _startup_replan(self) -> None:
        """Re-plan the branch head once: run only if a run died or the cluster differs from the head."""
        self._startup_handover()
        try:
            head = self.fetch_head()
            self._last_polled = head
        except Exception as exc:
            log.error("start-up fetch of %s failed; polling will retry: %s", self.branch, exc)
            head = None
        try:
            if head is not None:
                if self._interrupted:
                    self.trigger("startup", commit=head, force=True)
                elif head != self._deployed:
                    self._startup_run_if_needed(head)
        except Exception:
            log.exception("start-up re-plan failed")
        finally:
            with self._cond:
                self._starting = False
                self._cond.notify_all()
        if self.after_run is not None and self._pending is None:  # no start-up run: check drift now
            self.after_run()

    def _startup_run_if_needed(self, head: str) -> None:
        """The cluster is the truth: a fresh database over a cluster already at `head` needs no run."""
        try:
            plan = self.pipeline.plan(self.source, self.cluster, head)
        except Exception as exc:
            # Bad values or an unreachable cluster: a run records the error where operators look (/runs).
            log.warning("start-up plan of %s failed (%s); queueing a run to record it", head[:12], exc)
            self.trigger("startup", commit=head)
            return
        if any(_status_value(action.action) != "none" for action in plan.actions):
            self.trigger("startup", commit=head)
            return
        log.info("cluster already at %s: no start-up run", head[:12])
        self._deployed = head
        self.refresh_releases()

    def _execute(self, request: _Request, cancel: RunCancel | None = None) -> None:
        started = self._clock()
        try:
            result = self._deploy_holding_lease(request, cancel)
        except LeaseRejected as exc:
            log.error("%s", exc)
            self._fail(request.run_id, str(exc))
            result = "failed"
        if result is None:
            return
        self._tell_observer("run_finished", request.run_id)
        self._schedule_retry(request, result)
        elapsed = self._clock() - started
        self.metrics.runs.labels(result).inc()
        self.metrics.run_duration.labels(result).observe(elapsed)
        if result == "succeeded":
            self.metrics.last_success.set_to_current_time()
        log.info("run finished: %s in %.2fs", result, elapsed, extra={"commit": request.resolved})

    def _deploy_holding_lease(self, request: _Request, cancel: RunCancel | None = None) -> str | None:
        """Deploy while holding the cluster Lease; None if stopped while waiting for it."""
        if self.lease is None:
            return self._deploy(request, cancel)
        with self.lease.hold(self._stopping) as held:
            if not held:
                log.warning("stopped while waiting for the cluster lease; the run stays queued")
                return None
            return self._deploy(request, cancel)

    def _tell_observer(self, event: str, *args: Any) -> None:
        """Commit statuses and notifications never block or fail a run."""
        if self.observer is None:
            return
        try:
            getattr(self.observer, event)(*args)
        except Exception as exc:
            log.warning("run observer %s failed: %s", event, type(exc).__name__)

    def _unfinished_runs(self) -> list[int]:
        """Runs of this cluster that had resolved their commit and started, but never finished."""
        try:
            runs = self.store.list_runs(cluster=self.cluster, limit=20)
        except Exception:
            log.exception("listing unfinished runs failed")
            return []
        return [r.id for r in runs if _status_value(r.status) == "running" and r.commit]

    def progress(self) -> dict[str, str]:
        """What the running run is doing now: component -> activity (a helm write, a bootstrap phase, a check);
        empty when idle."""
        with self._cond:
            cancel = self._cancel
        return cancel.activities() if cancel is not None else {}

    def _fail(self, run_id: int, error: str) -> None:
        run = self.store.get_run(run_id)
        if run is not None and _status_value(run.status) in ("queued", "running"):
            self.store.finish_run(run_id, RunStatus.failed, error=error)

    def _deploy(self, request: _Request, cancel: RunCancel | None = None) -> str:
        """Fetch, resolve and apply one request; returns the run's final status."""
        self.store.start_run(request.run_id, commit=None)  # fetching is part of the run: it has started
        try:
            with self.git_lock:
                try:
                    self.source.fetch()
                    self.last_fetch_error = None
                except Exception as exc:
                    if not request.handover:
                        raise
                    # Finishing a handed-over run needs only its commit, which the mirror on the volume may hold.
                    self.last_fetch_error = str(exc)
                commit = self.source.resolve(request.rev or self.branch)
        except Exception as exc:
            self.last_fetch_error = str(exc)
            request.temporary = not isinstance(exc, UnknownRevision)  # an unreachable remote comes back
            log.error("cannot fetch or resolve %s: %s", request.rev or self.branch, exc)
            self._fail(request.run_id, f"cannot fetch or resolve {request.rev or self.branch}: {exc}")
            return "failed"
        request.resolved = commit
        log.info("run started", extra={"commit": commit, "trigger": request.trigger})
        self._tell_observer("run_started", request.run_id, commit)
        try:  # the commit is resolved: the run does not resolve it again
            if request.handover:
                result = self.pipeline.finish_handover(  # type: ignore[attr-defined]
                    self.source,
                    self.cluster,
                    commit,
                    run_id=request.run_id,
                    cancel=cancel,
                    handed_over_at=request.handed_over_at,
                )
            else:
                result = self.pipeline.run(
                    self.source, self.cluster, commit, trigger=request.trigger, run_id=request.run_id, cancel=cancel
                )
        except Exception as exc:
            # The run records its own pre-flight failures before raising; only fill in what it did not.
            request.temporary = bool(getattr(exc, "temporary", False))
            log.error("run failed: %s", exc)
            self._fail(request.run_id, f"{type(exc).__name__}: {exc}")
            return "failed"
        record = result.record
        status = _status_value(record.status)
        request.temporary = bool(getattr(result, "temporary", False))
        retried_steps = sum(1 for step in record.steps for reason in step.reasons if reason.code == "retried")
        if retried_steps:
            self.metrics.retries.labels("step").inc(retried_steps)
        self._note_release_runs(record)
        if status in ("succeeded", "degraded"):  # degraded: every component written, a check did not pass
            self._deployed, self._last_run_id = commit, request.run_id
        if status == RunStatus.handed_over.value:
            log.warning("wrote the manager's own release: run handed over to the new pod; taking no run until then")
            with self._cond:
                self._handed_over = (request.run_id, commit, self._clock())
        if result.releases is not None:  # the run's own view after it: no second observe or plan
            try:
                self.store.replace_releases(self.cluster, result.releases)
            except Exception:
                log.exception("storing the releases after the run failed")
        self.releases_version += 1
        if self.after_run is not None:
            self.after_run()
        return status

    # ---- scheduled workflow checks (issue 14) ------------------------------------------------------------

    def run_scheduled_checks(self) -> list[Any]:
        """Run the checks with a `schedule` that are due, at the deployed commit, between runs only: nothing
        runs, waits or starts up, and this instance can take the cluster Lease (so another instance's run does
        not overlap either). The worker starts no run until they finish. Returns the results."""
        commit = self._deployed
        runner = getattr(self.pipeline, "smoke_runner", None)
        if commit is None or runner is None:
            return []
        with self._cond:
            if self._running is not None or self._pending is not None or self._starting or self._stopping.is_set():
                return []
            self._checking = True
        held = False
        try:
            if self._smoke_desired is None or self._smoke_desired[0] != commit:
                self._smoke_desired = (commit, self.pipeline.desired(self.source, self.cluster, commit))  # type: ignore[attr-defined]
            desired = self._smoke_desired[1]
            due = smoke_due(desired.smoke, self._smoke_last, self._clock())
            if not due:
                return []
            if self.lease is not None:
                try:
                    held = self.lease.try_acquire()
                except DeployManagerError as exc:
                    log.warning("scheduled checks skipped: the cluster lease is not reachable: %s", exc)
                    return []
                if not held:
                    return []  # another instance runs: its run (or its schedule) has the cluster
            results = run_checks(runner, desired, due, store=self.store, max_parallel=4)  # type: ignore[arg-type]
            done = self._clock()
            for check in due:
                self._smoke_last[check.name] = done
            self.releases_version += 1  # /releases health reflects the checks
            return results
        finally:
            if held and self.lease is not None:
                self.lease.release()
            with self._cond:
                self._checking = False
                self._cond.notify_all()

    # ---- retries of failed runs (DM_RETRY_*) -------------------------------------------------------------

    def _schedule_retry(self, request: _Request, status: str) -> None:
        """After a run: a failed one is triggered again later (see the module docstring); any finished run
        replaces the retry that was pending."""
        if self.retry is None:
            return
        with self._cond:
            if self._retry_timer is not None:
                self._retry_timer.cancel()
                self._retry_timer = None
            if status == "succeeded":
                self._retry_counts = (None, 0, 0)
            if status != "failed" or self._stopping.is_set():
                return
            commit, fast, slow = self._retry_counts
            if commit != request.resolved:  # a new commit starts with fresh caps
                fast = slow = 0
            decision = next_run_retry(
                self.retry, temporary=request.temporary, fast_done=fast, slow_done=slow, jitter=random.random()
            )
            if decision is None:
                log.warning("run failed; retries of %s used up: waiting for a new trigger", request.resolved)
                return
            delay, reason = decision
            fast, slow = (fast + 1, slow) if reason == "temporary" else (fast, slow + 1)
            self._retry_counts = (request.resolved, fast, slow)
            timer = threading.Timer(delay, self._fire_retry, args=(reason,))
            timer.daemon = True
            timer.name = f"run-retry-{self.cluster}"
            self._retry_timer = timer
            timer.start()
        log.info("run failed (%s): retrying in %.0fs", reason, delay, extra={"run_id": request.run_id})

    def _fire_retry(self, reason: str) -> None:
        if self._stopping.is_set():
            return
        with contextlib.suppress(QueueStopping):
            result = self.trigger("retry", force=True)
            self.metrics.retries.labels(reason).inc()
            log.info("retry of a failed run (%s) %s", reason, result.status, extra={"run_id": result.run_id})

    # ---- supersede -----------------------------------------------------------------------------------------

    def _watch_supersede(self) -> None:
        """While a run is running and a newer one is pending, check whether the newer commit changes a component
        that waits in helm; if so stop the run (`superseded`) and end that helm command."""
        while not self._stopping.is_set():
            self._supersede_wake.wait()
            self._supersede_wake.clear()
            if self._stopping.is_set():
                return
            try:
                keep_checking = self._check_supersede()
            except Exception as exc:  # a failed check must not end the watcher: the run goes on normally
                log.warning("supersede check failed: %s: %s", type(exc).__name__, exc)
                keep_checking = True
            if keep_checking:  # a component may enter helm's wait later: look again
                self._supersede_wake.set()
                self._stopping.wait(SUPERSEDE_CHECK_SECONDS)

    def _check_supersede(self) -> bool:
        """One check; True while there is something to watch (a run and a newer pending request)."""
        with self._cond:
            running, pending, cancel = self._running, self._pending, self._cancel
        if running is None or pending is None or cancel is None:
            return False
        if cancel.stopped:
            return False
        in_helm = cancel.in_helm()
        desired_of = getattr(self.pipeline, "desired", None)
        if not in_helm or desired_of is None:
            return True
        key = (pending.run_id, pending.rev, pending.commit)
        if self._supersede_seen is None or self._supersede_seen[0] != key:
            # Resolved and loaded once per pending request (not every second): what the pending run will deploy,
            # its revision, else the commit it named, else the branch head; and each component's digest there.
            rev = pending.rev
            newer = self.resolve_revision(rev) if rev is not None else pending.commit or self.fetch_head()
            digests: dict[str, str] = {}
            if newer not in (running.resolved, running.commit):
                try:
                    with self.git_lock:
                        desired = desired_of(self.source, self.cluster, newer)
                    digests = {n: c.digest for n, c in desired.components.items()}
                except DeployManagerError as exc:  # a broken newer commit supersedes nothing; its run reports it
                    log.warning("supersede: commit %s does not load: %s", newer[:12], exc)
            self._supersede_seen = (key, newer, digests)
        _, newer, digests = self._supersede_seen
        changed = superseded_components(in_helm, digests)
        if not changed:
            return True
        reason = f"superseded by commit {newer[:12]}, which changes {', '.join(sorted(changed))}"
        log.warning("run %s %s: ending its helm wait", running.run_id, reason, extra={"run_id": running.run_id})
        cancel.stop(RunStatus.superseded, reason)
        cancel.end_helm(changed)
        return False
