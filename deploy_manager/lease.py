"""A per-cluster `coordination.k8s.io/v1` Lease, held while a run executes.

Contract:
- `ClusterLease.acquire(stop)` blocks until this instance holds the Lease (or `stop` is set) and then renews it
  in a background thread every `renew_seconds`; `release()` stops renewing and clears the holder so a waiting
  instance can start at once. `hold(stop)` wraps both as a context manager.
- Takeover after expiry, judged like client-go's leaderelection: a Lease whose record (holder, renewTime,
  resourceVersion) has not changed for `leaseDurationSeconds` *as observed by our own monotonic clock* is
  expired. No wall-clock comparison across machines, so clock skew cannot cause two holders.
- Takeover at once when the holder is provably dead (`liveness`: its pod no longer exists, or its process is
  gone from this host); when that cannot be known, expiry stays the rule.
- Every write carries the resourceVersion we read (optimistic concurrency): of two instances racing for a
  free Lease, the API server lets exactly one win; the other gets 409 and keeps waiting.
- If renewal fails for longer than the lease duration the lease counts as lost: `lost` turns true and an
  error is logged. The running helm command is not killed (that would leave a release pending-upgrade).
- A Lease the API server refuses (invalid name, RBAC) raises `LeaseRejected` at once: no retry can help.
- The lock logic only sees the small `LeaseBackend` protocol; `kube.lease.KubernetesLeaseBackend` implements it
  on the Kubernetes API (the `kubernetes` client is imported only under `kube/`). Lease errors are in the one
  error tree (`models.errors`): conflict and unavailable are temporary, rejected is permanent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from deploy_manager.clock import utcnow
from deploy_manager.kube.lease import KubernetesLeaseBackend
from deploy_manager.liveness import HolderLiveness, Verdict
from deploy_manager.models.errors import LeaseConflict, LeaseRejected, LeaseUnavailable
from deploy_manager.models.lease import LeaseRecord

__all__ = [
    "ClusterLease",
    "KubernetesLeaseBackend",
    "LeaseBackend",
    "LeaseConflict",
    "LeaseRecord",
    "LeaseRejected",
    "LeaseUnavailable",
]

log = logging.getLogger(__name__)


class LeaseBackend(Protocol):
    def get(self) -> LeaseRecord | None: ...
    def create(self, record: LeaseRecord) -> LeaseRecord: ...  # LeaseConflict if it exists
    def update(self, record: LeaseRecord) -> LeaseRecord: ...  # LeaseConflict on a stale resourceVersion


class ClusterLease:
    """Mutual exclusion of runs on one cluster across service instances."""

    def __init__(
        self,
        backend: LeaseBackend,
        *,
        identity: str,
        duration_seconds: float = 30.0,
        renew_seconds: float = 10.0,
        retry_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        liveness: HolderLiveness | None = None,
    ) -> None:
        if renew_seconds >= duration_seconds:
            raise ValueError("renew_seconds must be shorter than duration_seconds")
        self.backend = backend
        self.identity = identity
        self.duration = max(1, int(round(duration_seconds)))
        self.renew_seconds = renew_seconds
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._held = False
        self._lost = threading.Event()
        self._stop_renew = threading.Event()
        self._renewer: threading.Thread | None = None
        self._record: LeaseRecord | None = None
        self._mutex = threading.Lock()
        self.liveness = liveness
        self.last_takeover: str | None = None  # why the last takeover of a live record happened (logs, tests)

    @property
    def held(self) -> bool:
        return self._held and not self._lost.is_set()

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def _expired(self, record: LeaseRecord) -> bool:
        now = self._clock()
        if record.fingerprint() != self._observed:
            self._observed = record.fingerprint()
            self._observed_at = now
        return now - self._observed_at > record.duration_seconds

    def _dead_holder(self, holder: str | None) -> str | None:
        """Why the (unexpired) holder is provably dead, or None when it is alive or that cannot be known."""
        if self.liveness is None:
            return None
        try:
            verdict, why = self.liveness.check(holder)
        except Exception:  # a failed check proves nothing: fall back to expiry
            log.exception("checking whether lease holder %s is alive failed", holder)
            return None
        return f"holder is dead: {why}" if verdict is Verdict.gone else None

    def try_acquire(self) -> bool:
        """One attempt: True if we hold the Lease now."""
        with self._mutex:
            if self._held:
                return True
            now = utcnow()
            current = self.backend.get()
            mine = LeaseRecord(
                holder=self.identity, duration_seconds=self.duration, acquire_time=now, renew_time=now, transitions=0
            )
            try:
                if current is None:
                    self._record = self.backend.create(mine)
                else:
                    free = not current.holder or current.holder == self.identity
                    why = "expired"
                    if not free and not self._expired(current):
                        dead = self._dead_holder(current.holder)
                        if dead is None:
                            return False
                        why = dead
                    transitions = current.transitions + (0 if current.holder == self.identity else 1)
                    self._record = self.backend.update(
                        dataclasses.replace(mine, transitions=transitions, resource_version=current.resource_version)
                    )
                    if current.holder and current.holder != self.identity:
                        self.last_takeover = why
                        log.warning("took over the lease from %s: %s", current.holder, why)
            except LeaseConflict:
                return False
            self._held = True
            self._lost.clear()
            self._start_renewer()
            log.info("lease acquired by %s", self.identity)
            return True

    def acquire(self, stop: threading.Event | None = None, timeout: float | None = None) -> bool:
        """Block until held; False if `stop` was set or `timeout` passed first."""
        deadline = None if timeout is None else self._clock() + timeout
        waiting_logged = False
        while True:
            try:
                if self.try_acquire():
                    return True
            except LeaseUnavailable as exc:
                log.warning("lease not reachable, retrying: %s", exc)
            if not waiting_logged:
                log.info("waiting for the cluster lease held by another instance")
                waiting_logged = True
            if deadline is not None and self._clock() >= deadline:
                return False
            if stop is not None:
                if stop.wait(self.retry_seconds):
                    return False
            else:
                time.sleep(self.retry_seconds)

    def _start_renewer(self) -> None:
        self._stop_renew.clear()
        self._renewer = threading.Thread(target=self._renew_loop, name="lease-renew", daemon=True)
        self._renewer.start()

    def _renew_loop(self) -> None:
        last_ok = self._clock()
        while not self._stop_renew.wait(self.renew_seconds):
            try:
                with self._mutex:
                    if not self._held:
                        return
                    current = self.backend.get()
                    if current is None or current.holder != self.identity:
                        holder = current.holder if current else None
                        log.error("lease lost: now held by %s", holder)
                        self._lost.set()
                        return
                    self._record = self.backend.update(dataclasses.replace(current, renew_time=utcnow()))
                last_ok = self._clock()
            except LeaseRejected as exc:
                log.error("lease renewal refused, counting it as lost: %s", exc)
                self._lost.set()
                return
            except (LeaseUnavailable, LeaseConflict) as exc:
                if self._clock() - last_ok > self.duration:
                    log.error("lease not renewed for %ss, counting it as lost: %s", self.duration, exc)
                    self._lost.set()
                    return
                log.warning("lease renewal failed, retrying: %s", exc)

    def release(self) -> None:
        """Stop renewing and hand the Lease back (holder cleared), so a waiting instance starts at once."""
        self._stop_renew.set()
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join(timeout=self.renew_seconds + 5)
        with self._mutex:
            if not self._held:
                return
            self._held = False
            try:
                current = self.backend.get()
                if current is not None and current.holder == self.identity:
                    self.backend.update(dataclasses.replace(current, holder=None, renew_time=utcnow()))
                    log.info("lease released by %s", self.identity)
            except (LeaseUnavailable, LeaseConflict, LeaseRejected) as exc:
                # Not fatal: the lease simply expires after its duration.
                log.warning("lease release failed (it will expire): %s", exc)

    @contextlib.contextmanager
    def hold(self, stop: threading.Event | None = None) -> Iterator[bool]:
        """`with lease.hold(stop) as held:` held is False only when stopped before acquiring."""
        acquired = self.acquire(stop)
        try:
            yield acquired
        finally:
            if acquired:
                self.release()
