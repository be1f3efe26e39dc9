"""A per-cluster `coordination.k8s.io/v1` Lease, held while a run executes.

Contract:
- `ClusterLease.acquire(stop)` blocks until this instance holds the Lease (or `stop` is set) and then renews it
  in a background thread every `renew_seconds`; `release()` stops renewing and clears the holder so a waiting
  instance can start at once. `hold(stop)` wraps both as a context manager.
- Takeover only after expiry, judged like client-go's leaderelection: a Lease whose record (holder, renewTime,
  resourceVersion) has not changed for `leaseDurationSeconds` *as observed by our own monotonic clock* is
  expired. No wall-clock comparison across machines, so clock skew cannot cause two holders.
- Every write carries the resourceVersion we read (optimistic concurrency): of two instances racing for a
  free Lease, the API server lets exactly one win; the other gets 409 and keeps waiting.
- If renewal fails for longer than the lease duration the lease counts as lost: `lost` turns true and an
  error is logged. The running helm command is not killed (that would leave a release pending-upgrade).
- A Lease the API server refuses (invalid name, RBAC) raises `LeaseRejected` at once: no retry can help.
- The Kubernetes client is imported lazily in `KubernetesLeaseBackend`; the lock logic only sees the small
  `LeaseBackend` protocol.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)


class LeaseConflict(Exception):
    """The Lease changed (or appeared) between our read and our write: re-read and decide again."""


class LeaseUnavailable(Exception):
    """The Kubernetes API could not be reached to read or write the Lease (temporary)."""


class LeaseRejected(Exception):
    """The API server refused the Lease itself (invalid name, forbidden): retrying cannot help."""


@dataclasses.dataclass(frozen=True)
class LeaseRecord:
    holder: str | None
    duration_seconds: int
    acquire_time: dt.datetime | None = None
    renew_time: dt.datetime | None = None
    transitions: int = 0
    resource_version: str | None = None

    def fingerprint(self) -> tuple[Any, ...]:
        return (self.holder, self.renew_time, self.resource_version)


class LeaseBackend(Protocol):
    def get(self) -> LeaseRecord | None: ...
    def create(self, record: LeaseRecord) -> LeaseRecord: ...  # LeaseConflict if it exists
    def update(self, record: LeaseRecord) -> LeaseRecord: ...  # LeaseConflict on a stale resourceVersion


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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

    def try_acquire(self) -> bool:
        """One attempt: True if we hold the Lease now."""
        with self._mutex:
            if self._held:
                return True
            now = _now()
            current = self.backend.get()
            mine = LeaseRecord(
                holder=self.identity, duration_seconds=self.duration, acquire_time=now, renew_time=now, transitions=0
            )
            try:
                if current is None:
                    self._record = self.backend.create(mine)
                else:
                    free = not current.holder or current.holder == self.identity
                    if not free and not self._expired(current):
                        return False
                    transitions = current.transitions + (0 if current.holder == self.identity else 1)
                    self._record = self.backend.update(
                        dataclasses.replace(mine, transitions=transitions, resource_version=current.resource_version)
                    )
                    if current.holder and current.holder != self.identity:
                        log.warning("took over expired lease from %s", current.holder)
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
                    self._record = self.backend.update(dataclasses.replace(current, renew_time=_now()))
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
                    self.backend.update(dataclasses.replace(current, holder=None, renew_time=_now()))
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


class KubernetesLeaseBackend:
    """`LeaseBackend` on the Kubernetes API (kubernetes client, CoordinationV1Api)."""

    def __init__(self, *, name: str, namespace: str, kubeconfig: Path | None, context: str | None = None) -> None:
        from kubernetes import client, config

        self.name = name
        self.namespace = namespace
        if kubeconfig is not None:
            api_client = config.new_client_from_config(config_file=str(kubeconfig), context=context)
        else:
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            api_client = client.ApiClient(configuration)
        # Fail fast and let ClusterLease retry, instead of urllib3's default retries inside one call.
        api_client.configuration.retries = 1
        self._client = client
        self._api = client.CoordinationV1Api(api_client)
        self._version = client.VersionApi(api_client)
        self._timeout = 10

    def _to_record(self, lease: Any) -> LeaseRecord:
        spec = lease.spec
        return LeaseRecord(
            holder=spec.holder_identity or None,
            duration_seconds=spec.lease_duration_seconds or 0,
            acquire_time=spec.acquire_time,
            renew_time=spec.renew_time,
            transitions=spec.lease_transitions or 0,
            resource_version=lease.metadata.resource_version,
        )

    def _body(self, record: LeaseRecord) -> Any:
        c = self._client
        return c.V1Lease(
            api_version="coordination.k8s.io/v1",
            kind="Lease",
            metadata=c.V1ObjectMeta(
                name=self.name,
                namespace=self.namespace,
                resource_version=record.resource_version,
                labels={"app.kubernetes.io/managed-by": "deploy-manager"},
            ),
            spec=c.V1LeaseSpec(
                holder_identity=record.holder,
                lease_duration_seconds=record.duration_seconds,
                acquire_time=record.acquire_time,
                renew_time=record.renew_time,
                lease_transitions=record.transitions,
            ),
        )

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return fn(*args, _request_timeout=self._timeout)
        except ApiException as exc:
            if exc.status == 404:
                return None
            if exc.status == 409:
                raise LeaseConflict(f"lease {self.namespace}/{self.name} changed concurrently") from exc
            if exc.status in (400, 401, 403, 422):
                raise LeaseRejected(
                    f"lease {self.namespace}/{self.name}: the API server refused it: HTTP {exc.status} {exc.reason}"
                ) from exc
            raise LeaseUnavailable(f"lease {self.namespace}/{self.name}: HTTP {exc.status} {exc.reason}") from exc
        except (HTTPError, OSError) as exc:
            raise LeaseUnavailable(f"lease {self.namespace}/{self.name}: {exc}") from exc

    def get(self) -> LeaseRecord | None:
        lease = self._call(self._api.read_namespaced_lease, self.name, self.namespace)
        return None if lease is None else self._to_record(lease)

    def create(self, record: LeaseRecord) -> LeaseRecord:
        lease = self._call(self._api.create_namespaced_lease, self.namespace, self._body(record))
        if lease is None:
            raise LeaseUnavailable(f"namespace {self.namespace} not found for lease {self.name}")
        return self._to_record(lease)

    def update(self, record: LeaseRecord) -> LeaseRecord:
        lease = self._call(self._api.replace_namespaced_lease, self.name, self.namespace, self._body(record))
        if lease is None:
            raise LeaseConflict(f"lease {self.namespace}/{self.name} was deleted")
        return self._to_record(lease)

    def ping(self) -> None:
        """Raise LeaseUnavailable unless the API server answers (used by /readyz)."""
        self._call(self._version.get_code)
