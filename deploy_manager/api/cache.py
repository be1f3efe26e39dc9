"""The in-memory snapshot behind /releases (and the status page).

The stored releases only change when a run or an observe rewrites them, so the rendered answer is kept in
memory keyed by `RunQueue.releases_version` (bumped after each) and at most `CACHE_SECONDS` old (the database
may also be written by a `deploy-manager apply` on the same state dir). One reader refreshes a stale
snapshot while concurrent readers wait for it instead of all hitting the store.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

from pydantic import TypeAdapter

from deploy_manager.api.convert import release_out
from deploy_manager.api.schemas import DriftOut, ReleaseOut

CACHE_SECONDS = 2.0
RELEASE_LIST = TypeAdapter(list[ReleaseOut])


def latest_checks(store: Any, cluster: str) -> dict[str, dict[str, str]]:
    """component -> {check: status} of each check's latest result (issue 14)."""
    read = getattr(store, "latest_smoke", None)
    out: dict[str, dict[str, str]] = {}
    for r in read(cluster) if read is not None else []:
        out.setdefault(r.component, {})[r.name] = r.status.value
    return out


def with_checks(release: ReleaseOut, checks: dict[str, str] | None) -> ReleaseOut:
    """A release's health reflects its component's latest checks: one that did not pass makes it unhealthy."""
    if not checks:
        return release
    healthy = bool(release.healthy) and all(status == "passed" for status in checks.values())
    return release.model_copy(update={"checks": checks, "healthy": healthy})


@dataclasses.dataclass(frozen=True)
class ReleasesSnapshot:
    version: int
    taken: float
    releases: list[ReleaseOut]
    body: bytes  # the JSON of `releases`, ready to send


class ReleasesCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snap: ReleasesSnapshot | None = None

    def _fresh(self, snap: ReleasesSnapshot | None, version: int) -> bool:
        return snap is not None and snap.version == version and time.monotonic() - snap.taken < CACHE_SECONDS

    def get(self, queue: Any, store: Any, cluster: str) -> ReleasesSnapshot:
        version = queue.releases_version
        snap = self._snap
        if snap is not None and self._fresh(snap, version):
            return snap
        with self._lock:
            snap = self._snap
            if snap is not None and self._fresh(snap, version):
                return snap
            checks = latest_checks(store, cluster)
            releases = [
                with_checks(release_out(r, queue.last_run_for(r.namespace, r.release)), checks.get(r.component))
                for r in store.list_releases(cluster)
            ]
            with_drift(releases, getattr(queue, "drift_monitor", None))
            snap = ReleasesSnapshot(version, time.monotonic(), releases, RELEASE_LIST.dump_json(releases))
            self._snap = snap
            return snap


def with_drift(releases: list[ReleaseOut], monitor: Any) -> None:
    """Fill in `drift`/`drifted` from the drift monitor's last report (issue 13)."""
    if monitor is None:
        return
    for r in releases:
        found = monitor.component(r.component)
        if found is not None and found.release == r.release and found.namespace == r.namespace:
            r.drift = [DriftOut(**i.to_dict()) for i in found.items]
            r.drifted = found.drifted
