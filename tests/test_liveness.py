"""liveness: the pure verdict on a Lease holder (table), the facts read from /proc, and our identity."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from deploy_manager.liveness import HolderLiveness, HostFacts, Verdict, boot_id, judge, local_identity, process_start
from deploy_manager.models.lease import HolderIdentity

ME = HostFacts(name="pod-a", boot="0123abcd", in_cluster=True)
OUTSIDE = HostFacts(name="laptop", boot="0123abcd", in_cluster=False)


def holder(name: str = "pod-a", pid: int = 7, boot: str = "0123abcd", start: int = 1000) -> HolderIdentity:
    return HolderIdentity(name, pid, boot, start)


@pytest.mark.parametrize(
    ("who", "host", "pid_start", "pod_exists", "verdict"),
    [
        (None, ME, None, None, Verdict.unknown),  # an identity of another shape: nothing is proved
        (holder(), HostFacts("pod-a", None, True), None, None, Verdict.unknown),  # no boot id here
        (holder(boot="ffffffff"), ME, 1000, None, Verdict.gone),  # rebooted since
        (holder(), ME, None, None, Verdict.gone),  # its pid no longer runs (a restarted container)
        (holder(), ME, 2000, None, Verdict.gone),  # its pid is another process now
        (holder(), ME, 1000, None, Verdict.alive),
        (holder(name="pod-b"), ME, None, False, Verdict.gone),  # its pod was deleted
        (holder(name="pod-b"), ME, None, True, Verdict.alive),
        (holder(name="pod-b"), ME, None, None, Verdict.unknown),  # the pod lookup failed
        (holder(name="pod-b"), OUTSIDE, None, False, Verdict.unknown),  # another host, outside a cluster
        (holder(name="laptop"), OUTSIDE, None, None, Verdict.gone),
    ],
)
def test_judge(
    who: HolderIdentity | None, host: HostFacts, pid_start: int | None, pod_exists: bool | None, verdict: Verdict
) -> None:
    assert judge(who, host, pid_start=pid_start, pod_exists=pod_exists)[0] is verdict


@pytest.mark.parametrize(
    "text", ["pod-a_1", "pod-0_svc-1-234", "", None, "a_b_c.d", "pod_1_0123abcd.12_x", "-x_1_0123abcd.1"]
)
def test_identities_of_another_shape_parse_to_none(text: str | None) -> None:
    assert HolderIdentity.parse(text) is None


def test_identity_round_trips() -> None:
    who = holder()
    assert HolderIdentity.parse(str(who)) == who


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_our_identity_proves_a_dead_process_gone_and_a_live_one_alive() -> None:
    facts = HostFacts(name="host-x", boot=boot_id(), in_cluster=False)
    checker = HolderLiveness(facts)
    mine = local_identity("host-x")
    assert HolderIdentity.parse(mine) is not None
    assert checker.check(mine)[0] is Verdict.alive
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = local_identity("host-x", child.pid)
    assert checker.check(dead)[0] is Verdict.alive
    child.kill()  # kill -9
    child.wait()
    assert checker.check(dead)[0] is Verdict.gone
    # Our own pid with another start time: the pid was reused.
    reused = str(HolderIdentity("host-x", os.getpid(), facts.boot or "", (process_start(os.getpid()) or 0) + 1))
    assert checker.check(reused)[0] is Verdict.gone


def test_a_dead_holder_whose_helm_may_still_run_is_not_taken_over_yet() -> None:
    facts = HostFacts(name="pod-a", boot="0123abcd", in_cluster=True)
    dead = str(holder(name="pod-b"))
    assert HolderLiveness(facts, lambda name: False, helm_running=lambda: False).check(dead)[0] is Verdict.gone
    assert HolderLiveness(facts, lambda name: False, helm_running=lambda: True).check(dead)[0] is Verdict.unknown
    other_node = str(holder(name="pod-b", boot="ffffffff"))  # another kernel: its processes are not ours to see
    assert HolderLiveness(facts, lambda name: False, helm_running=lambda: True).check(other_node)[0] is Verdict.gone
