"""Is the holder of a Lease provably dead? Then the Lease is taken over at once instead of after expiry.

observe (`HostFacts.read`, `process_start`, the pod lookup) -> decide (`judge`, pure, table-tested) -> the
Lease acts on the verdict (`deploy_manager.lease`).

- Our identity (`local_identity`) is `<pod or host>_<pid>_<boot id[:8]>.<process start>` (`HolderIdentity`).
- Same name as ours (the same host, or the same pod: a container restarted after `kill -9` or an OOM):
  the holder is gone when the host has rebooted since (boot id differs), when no process has its pid, or when
  the process with its pid started at another time (the pid was reused). One name is one pid namespace: in a
  pod the service is the pod's only deploy-manager container, and outside a cluster one host name is one host.
- Another name, in a cluster: the holder is gone when its pod no longer exists (GET the pod: 404).
- A dead holder's helm may outlive it (only the python process was killed): while a helm process that is not
  our child runs in this kernel's view (`foreign_helm_running`), a `gone` holder on the same boot counts as
  `unknown`, and the Lease is taken once that helm has ended. In a pod only the pod's own processes are seen.
- Anything else (an identity of another shape, another host outside a cluster, the pod lookup failing) is
  `unknown`: the Lease's expiry stays the rule. A wrong `gone` would let two managers write the same
  releases, so every doubt answers `unknown`.
"""

from __future__ import annotations

import enum
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deploy_manager.models.lease import HolderIdentity

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


class Verdict(enum.StrEnum):
    gone = "gone"
    alive = "alive"
    unknown = "unknown"


@dataclass(frozen=True)
class HostFacts:
    """This process's view of where it runs."""

    name: str  # our pod name (POD_NAME) or host name
    boot: str | None  # the first 8 hex digits of the kernel's boot id; None when unknown (no /proc)
    in_cluster: bool  # POD_NAME is set: holders on other pods can be looked up

    @classmethod
    def read(cls) -> HostFacts:
        pod = os.environ.get("POD_NAME")
        return cls(pod or socket.gethostname(), boot_id(), bool(pod))


def boot_id() -> str | None:
    try:
        return BOOT_ID.read_text(encoding="ascii").strip().replace("-", "")[:8] or None
    except OSError:
        return None


def process_start(pid: int) -> int | None:
    """When process `pid` started (clock ticks after boot), or None when no such process runs (or /proc is
    missing: the caller then has no boot id either and judges nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # Field 2 (the command) is in parentheses and may hold spaces: split after its closing one.
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])  # field 22 overall: starttime
    except (IndexError, ValueError):
        return None


def foreign_helm_running() -> bool:
    """An orphaned helm process runs (its parent died: it was re-parented to init or a subreaper, not a python
    process such as a live deploy-manager or a test run): it may still be writing the dead holder's release."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv0 = (entry / "cmdline").read_bytes().split(b"\0", 1)[0]
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        if os.path.basename(argv0) != b"helm":
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        parent = fields[1] if len(fields) > 1 else ""  # field 4 overall: the parent pid
        if parent == str(me):
            continue
        try:
            parent_argv = Path(f"/proc/{parent}/cmdline").read_bytes()
        except OSError:
            return True
        if parent == "1" or b"python" not in parent_argv and b"deploy-manager" not in parent_argv:
            return True
    return False


def local_identity(name: str | None = None, pid: int | None = None) -> str:
    """This process's Lease identity; the plain `<name>_<pid>` where /proc cannot tell the rest."""
    facts = HostFacts.read()
    name = name or facts.name
    pid = os.getpid() if pid is None else pid
    start = process_start(pid)
    if facts.boot is None or start is None:
        return f"{name}_{pid}"
    return str(HolderIdentity(name, pid, facts.boot, start))


def judge(
    holder: HolderIdentity | None, host: HostFacts, *, pid_start: int | None, pod_exists: bool | None
) -> tuple[Verdict, str]:
    """The verdict on a Lease holder and why. `pid_start`: the start time of the process with the holder's pid
    on this host (None: no such process); `pod_exists`: whether the holder's pod exists (None: not known)."""
    if holder is None:
        return Verdict.unknown, "the holder identity does not say where it runs"
    if holder.name == host.name:
        if host.boot is None:
            return Verdict.unknown, "this host's boot id is unknown"
        if holder.boot != host.boot:
            return Verdict.gone, f"{holder.name} has rebooted since the holder started"
        if pid_start is None:
            return Verdict.gone, f"process {holder.pid} no longer runs on {holder.name}"
        if pid_start != holder.start:
            return Verdict.gone, f"process {holder.pid} on {holder.name} is another process (pid reused)"
        return Verdict.alive, f"process {holder.pid} still runs on {holder.name}"
    if host.in_cluster and pod_exists is False:
        return Verdict.gone, f"pod {holder.name} no longer exists"
    if host.in_cluster and pod_exists is True:
        return Verdict.alive, f"pod {holder.name} exists"
    return Verdict.unknown, f"{holder.name} is another host"


@dataclass
class HolderLiveness:
    """Gathers the facts about one holder and judges it. `pod_exists(name)`: True/False, None when unknown."""

    host: HostFacts
    pod_exists: Callable[[str], bool | None] | None = None
    helm_running: Callable[[], bool] = foreign_helm_running

    def check(self, holder_text: str | None) -> tuple[Verdict, str]:
        holder = HolderIdentity.parse(holder_text)
        pid_start: int | None = None
        pod: bool | None = None
        if holder is not None and holder.name == self.host.name:
            pid_start = process_start(holder.pid)
        elif holder is not None and self.host.in_cluster and self.pod_exists is not None:
            pod = self.pod_exists(holder.name)
        verdict, why = judge(holder, self.host, pid_start=pid_start, pod_exists=pod)
        if verdict is Verdict.gone and holder is not None and holder.boot == self.host.boot and self.helm_running():
            return Verdict.unknown, f"{why}, but a helm process it may have started still runs"
        return verdict, why
