"""The background sender and the run queue's notifier.

`Sender`: one daemon thread delivering jobs in the order given. `submit` never blocks: a full queue drops the
job (logged, counted as a failure of its target). A job that raises is logged (masked by the `Redactor`, no
traceback: an exception's chain may hold a URL) and counted in `deploy_manager_notify_failures_total{target}`;
one that succeeds in `deploy_manager_notify_sent_total{target}`. `stop(timeout)` delivers what is queued
until the deadline (a shutdown still reports the run it interrupted), then abandons the rest.

`RunNotifier` is what the run queue calls (`run_started(run_id, commit)`, `run_finished(run_id)`): it only
queues jobs. The jobs read the run record from the store when they run, so the notification describes the
record as finished.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Protocol

from deploy_manager.config import Settings
from deploy_manager.metrics import ServiceMetrics
from deploy_manager.models.run import RunRecord
from deploy_manager.notify import github as gh
from deploy_manager.notify.describe import commit_state, payload, summarize
from deploy_manager.notify.webhook import WebhookNotifier
from deploy_manager.redaction import Redactor

log = logging.getLogger(__name__)
QUEUE_SIZE = 256
TARGETS = (gh.TARGET, "webhook")


class RunReader(Protocol):
    def get_run(self, run_id: int) -> RunRecord | None: ...


_Job = tuple[str, str, Callable[[], object]]  # target, what (for the log), the call


class Sender:
    def __init__(self, *, metrics: ServiceMetrics, redact: Redactor, size: int = QUEUE_SIZE) -> None:
        self.metrics = metrics
        self.redact = redact
        self._jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=size)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition()
        self._busy = 0

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="notify-sender", daemon=True)
                self._thread.start()

    def submit(self, target: str, what: str, call: Callable[[], object]) -> bool:
        with self._idle:
            self._busy += 1
        try:
            self._jobs.put_nowait((target, what, call))
        except queue.Full:
            self._done()
            log.warning("notification queue full: dropped %s (%s)", what, target)
            self.metrics.notify_failures.labels(target).inc()
            return False
        return True

    def _done(self) -> None:
        with self._idle:
            self._busy -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """True once every submitted job was delivered or given up (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def stop(self, timeout: float = 15.0) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        if not self.wait_idle(timeout):
            log.warning("notifications still queued at shutdown were not sent")
        with contextlib.suppress(queue.Full):  # else a daemon thread: it ends with the process
            self._jobs.put_nowait(None)
        thread.join(timeout=1.0)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            target, what, call = job
            try:
                call()
            except Exception as exc:
                message = self.redact.text(f"{type(exc).__name__}: {exc}")
                log.warning("notification failed: %s (%s): %s", what, target, message)
                self.metrics.notify_failures.labels(target).inc()
            else:
                self.metrics.notify_sent.labels(target).inc()
            finally:
                self._done()


class RunNotifier:
    """Commit statuses and the run-end notification of one cluster's runs (see the module docstring)."""

    def __init__(
        self,
        *,
        cluster: str,
        store: RunReader,
        sender: Sender,
        statuses: gh.GitHubStatuses | None = None,
        webhook: WebhookNotifier | None = None,
        public_url: str | None = None,
    ) -> None:
        self.cluster = cluster
        self.store = store
        self.sender = sender
        self.statuses = statuses
        self.webhook = webhook
        self.public_url = public_url.rstrip("/") if public_url else None

    def link(self, run_id: int) -> str | None:
        return f"{self.public_url}/runs/{run_id}" if self.public_url else None

    def start(self) -> None:
        self.sender.start()

    def stop(self, timeout: float = 15.0) -> None:
        self.sender.stop(timeout)
        for client in (self.statuses, self.webhook):
            if client is not None:
                client.close()

    # -- called by the run queue: queue only ---------------------------------------------------------------
    def run_started(self, run_id: int, commit: str) -> None:
        if self.statuses is None:
            return
        status = gh.CommitStatus(
            sha=commit,
            state="pending",
            description=f"deploying to {self.cluster}",
            context=gh.status_context(self.cluster),
            target_url=self.link(run_id),
        )
        statuses = self.statuses
        self.sender.submit(gh.TARGET, f"pending status of run {run_id}", lambda: statuses.post(status))

    def run_finished(self, run_id: int) -> None:
        if self.statuses is not None:
            self.sender.submit(gh.TARGET, f"final status of run {run_id}", lambda: self._final_status(run_id))
        if self.webhook is not None:
            self.sender.submit("webhook", f"notification of run {run_id}", lambda: self._notify(run_id))

    # -- in the sender's thread ----------------------------------------------------------------------------
    def _record(self, run_id: int) -> RunRecord:
        run = self.store.get_run(run_id)
        if run is None:
            raise LookupError(f"run {run_id} is not in the store")
        return run

    def _final_status(self, run_id: int) -> None:
        run = self._record(run_id)
        if not run.commit or self.statuses is None:
            return  # nothing was resolved (e.g. the remote was unreachable): no commit to put a status on
        summary = summarize(run)
        status = gh.CommitStatus(
            sha=run.commit,
            state=commit_state(run.status),
            description=summary.description,
            context=gh.status_context(self.cluster),
            target_url=self.link(run_id),
        )
        self.statuses.post(status)

    def _notify(self, run_id: int) -> None:
        if self.webhook is not None:
            self.webhook.post(payload(self._record(run_id), self.link(run_id)))


def build_notifier(settings: Settings, *, store: RunReader, metrics: ServiceMetrics) -> RunNotifier | None:
    """The notifier the settings ask for, or None when neither statuses nor notifications are configured."""
    statuses = None
    if settings.github_token is not None and settings.github_repository:
        statuses = gh.GitHubStatuses(
            api_url=settings.github_api_url,
            token=settings.github_token.get_secret_value(),
            repository=settings.github_repository,
        )
    elif settings.github_token is not None or settings.github_repository:
        log.warning("commit statuses are off: they need both DM_GITHUB_TOKEN and DM_GITHUB_REPOSITORY")
    webhook = WebhookNotifier(settings.notify_url.get_secret_value()) if settings.notify_url is not None else None
    if statuses is None and webhook is None:
        return None
    sender = Sender(metrics=metrics, redact=Redactor(settings.secret_values()))
    return RunNotifier(
        cluster=settings.cluster,
        store=store,
        sender=sender,
        statuses=statuses,
        webhook=webhook,
        public_url=settings.public_url,
    )
