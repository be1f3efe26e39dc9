"""The suspend ConfigMap `deploy-manager-<cluster>-suspend` (issue 13): read by every run, written by
`deploy-manager suspend|resume` and `POST /suspend|/resume`.

It lives next to the cluster's Lease (DM_LEASE_NAMESPACE), so it survives the loss of the database and
every replica and the CLI see the same suspensions. Writes are read-modify-write on the ConfigMap's
resourceVersion: two people suspending at once both land (a 409 reads again and retries).
"""

from __future__ import annotations

import json
from typing import Any

from deploy_manager.clock import utcnow
from deploy_manager.config import lease_name_for
from deploy_manager.kube.client import KubeClient
from deploy_manager.models.errors import KubeConflict, KubeNotFound, KubeUnavailable
from deploy_manager.models.labels import LABEL_PREFIX
from deploy_manager.models.suspend import Suspension, Suspensions

CONFLICT_ATTEMPTS = 5


def configmap_name(cluster: str) -> str:
    """`deploy-manager-<cluster>-suspend` (the cluster's Lease name, which is a DNS name, plus `-suspend`)."""
    return f"{lease_name_for(cluster)}-suspend"


class SuspendStore:
    """One cluster's suspensions in its ConfigMap, in `namespace` (the Lease's)."""

    def __init__(self, kube: KubeClient, *, cluster: str, namespace: str) -> None:
        self.kube = kube
        self.cluster = cluster
        self.namespace = namespace
        self.name = configmap_name(cluster)

    @property
    def where(self) -> str:
        return f"ConfigMap {self.namespace}/{self.name}"

    def _get(self) -> dict[str, Any] | None:
        try:
            data = self.kube._call(  # the client's retrying, error-typing call
                f"reading {self.where}", self.kube.core.read_namespaced_config_map, self.name, self.namespace
            )
        except KubeNotFound:
            return None
        return data if isinstance(data, dict) else None

    def read(self) -> Suspensions:
        """The suspensions now (none when the ConfigMap does not exist). An unreachable API raises
        KubeUnavailable: a run must not write what may be suspended (it fails and is retried)."""
        found = self._get()
        return Suspensions.from_data((found or {}).get("data"))

    def _body(self, suspensions: Suspensions, resource_version: str | None) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": {"app.kubernetes.io/managed-by": "deploy-manager", f"{LABEL_PREFIX}cluster": self.cluster},
            "annotations": {f"{LABEL_PREFIX}purpose": "suspensions of cluster " + json.dumps(self.cluster)},
        }
        if resource_version:
            meta["resourceVersion"] = resource_version
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": suspensions.data()}

    def _update(self, change: Any) -> tuple[Suspensions, Suspensions]:
        """Apply `change(Suspensions) -> Suspensions`; returns (before, after). Retries on a concurrent write."""
        core = self.kube.core
        for _ in range(CONFLICT_ATTEMPTS):
            found = self._get()
            before = Suspensions.from_data((found or {}).get("data"))
            after = change(before)
            if after.data() == before.data():
                return before, after  # nothing to write
            try:
                if found is None:
                    self.kube._call(
                        f"creating {self.where}",
                        core.create_namespaced_config_map,
                        self.namespace,
                        self._body(after, None),
                    )
                else:
                    rv = str((found.get("metadata") or {}).get("resourceVersion") or "")
                    self.kube._call(
                        f"updating {self.where}",
                        core.replace_namespaced_config_map,
                        self.name,
                        self.namespace,
                        self._body(after, rv),
                    )
            except KubeConflict:
                continue  # someone else wrote it (or created it) meanwhile: read again
            return before, after
        raise KubeUnavailable(f"updating {self.where}: it kept changing under us ({CONFLICT_ATTEMPTS} attempts)")

    def suspend(self, component: str | None, *, by: str, reason: str, source: str) -> Suspension:
        """Suspend `component` (None: the whole cluster); a second suspend replaces who/why/when."""
        suspension = Suspension(
            component, by=by, reason=reason, at=utcnow().isoformat(timespec="seconds"), source=source
        )
        self._update(lambda current: current.with_suspension(suspension))
        return suspension

    def resume(self, component: str | None) -> Suspension | None:
        """Lift the suspension of `component` (None: the cluster's own, not the components'); returns the one
        lifted, None if there was none."""
        before, _ = self._update(lambda current: current.without(component))
        return before.get(component)
