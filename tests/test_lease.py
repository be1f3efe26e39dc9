"""ClusterLease: mutual exclusion across instances, renewal, takeover only after expiry, release.

`MemoryLeaseBackend` (tests/servicelib.py) keeps one Lease with the API server's optimistic concurrency;
the Kubernetes backend runs against the sandbox at the end (and in tests/api/test_integration.py).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from deploy_manager.lease import ClusterLease, KubernetesLeaseBackend, LeaseConflict, LeaseRejected
from deploy_manager.liveness import HolderLiveness, HostFacts, boot_id, local_identity
from tests.servicelib import MemoryLeaseBackend


def lease(backend: MemoryLeaseBackend, name: str, duration: float = 1.0, renew: float = 0.2) -> ClusterLease:
    return ClusterLease(backend, identity=name, duration_seconds=duration, renew_seconds=renew, retry_seconds=0.05)


def test_one_holder_at_a_time_and_release_hands_over_at_once() -> None:
    backend = MemoryLeaseBackend()
    a, b = lease(backend, "pod-a_1"), lease(backend, "pod-b_1")
    assert a.try_acquire()
    assert backend.record is not None and backend.record.holder == "pod-a_1"
    assert not b.try_acquire()
    a.release()
    assert backend.record.holder is None
    assert b.try_acquire() and backend.record.holder == "pod-b_1"
    b.release()


def test_renewal_keeps_the_lease_past_its_duration() -> None:
    backend = MemoryLeaseBackend()
    a, b = lease(backend, "a", duration=2.0), lease(backend, "b", duration=2.0)
    assert a.try_acquire()
    assert not b.acquire(timeout=5)  # 2.5 lease durations: a keeps renewing
    assert a.held and not a.lost
    a.release()


def test_a_dead_holder_is_taken_over_only_after_expiry() -> None:
    backend = MemoryLeaseBackend()
    dead = lease(backend, "dead", duration=1.0)
    assert dead.try_acquire()
    dead._stop_renew.set()  # the process died: no renewals, no release
    b = lease(backend, "b", duration=1.0)
    started = time.monotonic()
    assert b.acquire(timeout=10)
    waited = time.monotonic() - started
    assert 1.0 <= waited < 3.0
    assert backend.record is not None and backend.record.holder == "b" and backend.record.transitions == 1
    b.release()


def test_racing_instances_never_both_win() -> None:
    for _ in range(20):
        backend = MemoryLeaseBackend()
        leases = [lease(backend, f"pod-{i}") for i in range(4)]
        barrier = threading.Barrier(len(leases))
        wins: list[str] = []

        def race(lock: ClusterLease, barrier: threading.Barrier, wins: list[str]) -> None:
            barrier.wait()
            if lock.try_acquire():
                wins.append(lock.identity)

        threads = [threading.Thread(target=race, args=(lk, barrier, wins)) for lk in leases]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1
        for lk in leases:
            lk.release()


def test_a_stolen_lease_is_reported_lost() -> None:
    backend = MemoryLeaseBackend()
    a = lease(backend, "a", duration=1.0, renew=0.1)
    assert a.try_acquire()
    while True:  # the renewer may write in between: retry on a stale resourceVersion, as a client would
        current = backend.get()
        assert current is not None
        try:
            backend.update(dataclasses.replace(current, holder="intruder"))
            break
        except LeaseConflict:
            continue
    deadline = time.monotonic() + 5
    while not a.lost and time.monotonic() < deadline:
        time.sleep(0.02)
    assert a.lost and not a.held
    a.release()
    assert backend.record is not None and backend.record.holder == "intruder"  # release never clears another's


def test_acquire_returns_false_when_stopped() -> None:
    backend = MemoryLeaseBackend()
    a, b = lease(backend, "a"), lease(backend, "b")
    assert a.try_acquire()
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    with b.hold(stop) as held:
        assert not held
    a.release()


def test_renew_must_be_shorter_than_duration() -> None:
    with pytest.raises(ValueError):
        ClusterLease(MemoryLeaseBackend(), identity="x", duration_seconds=5, renew_seconds=5)


@pytest.mark.helm
def test_the_kubernetes_lease_on_the_sandbox(sandbox_module: Any) -> None:
    shared = KubernetesLeaseBackend(
        name=f"dm-test-{time.monotonic_ns()}", namespace="default", kubeconfig=Path(sandbox_module.kubeconfig)
    )
    a = ClusterLease(shared, identity="pod-a_1", duration_seconds=1, renew_seconds=0.2, retry_seconds=0.05)
    b = ClusterLease(
        KubernetesLeaseBackend(name=shared.name, namespace="default", kubeconfig=Path(sandbox_module.kubeconfig)),
        identity="pod-b_1",
        duration_seconds=1,
        renew_seconds=0.2,
        retry_seconds=0.05,
    )
    assert a.try_acquire() and not b.try_acquire()
    record = shared.get()
    assert record is not None and record.holder == "pod-a_1" and record.duration_seconds == 1
    assert not b.acquire(timeout=2)  # renewed: never expires while a holds it
    # A write with a stale resourceVersion is a conflict, as on a real API server.
    with pytest.raises(LeaseConflict):
        shared.update(dataclasses.replace(record, holder="intruder", resource_version="1"))
    a.release()
    assert b.acquire(timeout=5)
    record = shared.get()
    assert record is not None and record.holder == "pod-b_1" and record.transitions == 1
    b.release()
    shared.ping()
    with pytest.raises(LeaseRejected):
        KubernetesLeaseBackend(
            name="Not_A_Valid_Name", namespace="default", kubeconfig=Path(sandbox_module.kubeconfig)
        ).create(record)


def test_a_provably_dead_holder_is_taken_over_at_once() -> None:
    backend = MemoryLeaseBackend()
    facts = HostFacts(name="host-x", boot=boot_id(), in_cluster=False)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = ClusterLease(backend, identity=local_identity("host-x", child.pid), duration_seconds=30, renew_seconds=10)
    assert dead.try_acquire()
    dead._stop_renew.set()  # the process dies with kill -9: no renewals, no release
    child.kill()
    child.wait()
    b = ClusterLease(
        backend,
        identity=local_identity("host-x"),
        duration_seconds=30,
        renew_seconds=10,
        retry_seconds=0.05,
        liveness=HolderLiveness(facts, helm_running=lambda: False),  # no helm of other tests counts here
    )
    started = time.monotonic()
    assert b.acquire(timeout=5)
    assert time.monotonic() - started < 1.0  # not the 30 s lease duration
    assert b.last_takeover is not None and "no longer runs" in b.last_takeover
    assert backend.record is not None and backend.record.transitions == 1
    b.release()


def test_a_live_or_unknown_holder_is_still_waited_for() -> None:
    backend = MemoryLeaseBackend()
    facts = HostFacts(name="host-x", boot=boot_id(), in_cluster=False)
    alive = ClusterLease(backend, identity=local_identity("host-x"), duration_seconds=30, renew_seconds=10)
    assert alive.try_acquire()
    for identity in ("host-x_1", local_identity("host-y")):  # another shape; another host
        other = ClusterLease(
            backend, identity=identity, duration_seconds=30, renew_seconds=10, liveness=HolderLiveness(facts)
        )
        assert not other.try_acquire()
    alive.release()


def test_a_holder_whose_pod_is_gone_is_taken_over_on_the_sandbox(sandbox_module: Any) -> None:
    name = f"dm-test-{time.monotonic_ns()}"
    kubeconfig = Path(sandbox_module.kubeconfig)
    gone = ClusterLease(
        KubernetesLeaseBackend(name=name, namespace="default", kubeconfig=kubeconfig),
        identity="deploy-manager-5d9c-gone_1_0123abcd.42",
        duration_seconds=30,
        renew_seconds=10,
    )
    assert gone.try_acquire()
    gone._stop_renew.set()
    backend = KubernetesLeaseBackend(name=name, namespace="default", kubeconfig=kubeconfig)
    assert backend.pod_exists("deploy-manager-5d9c-gone") is False
    b = ClusterLease(
        backend,
        identity="deploy-manager-5d9c-new_1_0123abcd.77",
        duration_seconds=30,
        renew_seconds=10,
        liveness=HolderLiveness(
            HostFacts("deploy-manager-5d9c-new", "0123abcd", True), backend.pod_exists, helm_running=lambda: False
        ),
    )
    assert b.try_acquire()
    assert b.last_takeover is not None and "pod deploy-manager-5d9c-gone no longer exists" in b.last_takeover
    b.release()
