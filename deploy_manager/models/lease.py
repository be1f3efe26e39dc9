"""The cluster lease as the lock logic sees it (`deploy_manager.lease`), whatever stores it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any


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


@dataclasses.dataclass(frozen=True)
class HolderIdentity:
    """A Lease holder identity this project writes: `<host or pod>_<pid>_<boot id[:8]>.<process start>`.

    The boot id and the process start time (clock ticks since boot, /proc/<pid>/stat field 22) make a
    pid unambiguous on its host: a pid reused after a restart or a reboot is told apart. Identities of
    another shape (set by DM_IDENTITY, or older versions) parse to None: nothing can be proved about them.
    """

    name: str  # the pod name in a cluster, else the host name
    pid: int
    boot: str
    start: int

    def __str__(self) -> str:
        return f"{self.name}_{self.pid}_{self.boot}.{self.start}"

    @classmethod
    def parse(cls, text: str | None) -> HolderIdentity | None:
        match = _HOLDER.match(text or "")
        if match is None:
            return None
        return cls(match["name"], int(match["pid"]), match["boot"], int(match["start"]))


_HOLDER = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9.-]*)_(?P<pid>\d{1,10})_(?P<boot>[0-9a-f]{8})\.(?P<start>\d{1,20})$"
)
