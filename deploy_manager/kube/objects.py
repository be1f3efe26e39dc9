"""`ObjectsApi`: list any kind by (apiVersion, kind, namespace) and server-side apply an object, as raw JSON.

Drift detection lists each (kind, namespace) its manifests use once, instead of one GET per object. The REST
path of a kind is known for the built-in kinds charts render; any other kind costs one discovery request per
group/version (cached for the life of the object). Errors are the client's error tree (`api_error`), retried
on temporary ones like every other call.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from deploy_manager.kube.client import KubeClient, api_error
from deploy_manager.models.errors import KubeNotFound, KubeUnavailable
from deploy_manager.retry import call_with_retries

Obj = dict[str, Any]
_TIMEOUT = (5, 60)  # connect, read (seconds)
# Helm keeps every release revision in a Secret labelled owner=helm: never what a chart renders, often large.
NOT_HELM_RECORDS = "owner!=helm"

# kind -> (plural, namespaced) for the kinds charts usually render: no discovery request for them.
KNOWN: dict[str, tuple[str, bool]] = {
    "ConfigMap": ("configmaps", True),
    "Secret": ("secrets", True),
    "Service": ("services", True),
    "ServiceAccount": ("serviceaccounts", True),
    "Pod": ("pods", True),
    "PersistentVolumeClaim": ("persistentvolumeclaims", True),
    "Endpoints": ("endpoints", True),
    "Deployment": ("deployments", True),
    "StatefulSet": ("statefulsets", True),
    "DaemonSet": ("daemonsets", True),
    "ReplicaSet": ("replicasets", True),
    "Job": ("jobs", True),
    "CronJob": ("cronjobs", True),
    "Role": ("roles", True),
    "RoleBinding": ("rolebindings", True),
    "Ingress": ("ingresses", True),
    "NetworkPolicy": ("networkpolicies", True),
    "PodDisruptionBudget": ("poddisruptionbudgets", True),
    "HorizontalPodAutoscaler": ("horizontalpodautoscalers", True),
    "Lease": ("leases", True),
    "Namespace": ("namespaces", False),
    "ClusterRole": ("clusterroles", False),
    "ClusterRoleBinding": ("clusterrolebindings", False),
    "CustomResourceDefinition": ("customresourcedefinitions", False),
    "IngressClass": ("ingressclasses", False),
    "PriorityClass": ("priorityclasses", False),
    "StorageClass": ("storageclasses", False),
    "PersistentVolume": ("persistentvolumes", False),
}


def group_path(api_version: str) -> str:
    """`/api/v1` for the core group, else `/apis/<group>/<version>`."""
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


class ObjectsApi:
    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube
        self.api = kube.api_client
        self._discovered: dict[str, dict[str, tuple[str, bool]]] = {}
        self._lock = threading.Lock()
        self.requests = 0  # API requests made (retries included): what a drift check costs

    def _request(
        self, what: str, method: str, path: str, *, query: list[tuple[str, str]] | None = None, body: Obj | None = None
    ) -> Obj:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/apply-patch+yaml"  # JSON is YAML: the client sends it as JSON

        def once() -> Obj:
            request = self.api.param_serialize(
                method=method,
                resource_path=path,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            with self._lock:
                self.requests += 1
            try:
                resp = self.api.call_api(*request, _request_timeout=_TIMEOUT)
                resp.read()  # type: ignore[no-untyped-call]
                if not 200 <= resp.status <= 299:
                    raise ApiException.from_response(http_resp=resp, body=None, data=None)
            except ApiException as exc:
                raise api_error(what, self.kube.host, exc) from exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                reason = str(getattr(exc, "reason", None) or exc).splitlines()[0][:200]
                raise KubeUnavailable(f"{what}: cannot reach the Kubernetes API at {self.kube.host}: {reason}") from exc
            data = json.loads(resp.data or b"{}")
            return data if isinstance(data, dict) else {}

        return call_with_retries(once, self.kube.retry)[0]

    def resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) of a kind: the table above, else one discovery request per group/version."""
        if kind in KNOWN and (api_version == "v1") == (kind in _CORE):
            return KNOWN[kind]
        with self._lock:
            found = self._discovered.get(api_version)
        if found is None:
            data = self._request(f"discovering {api_version}", "GET", group_path(api_version))
            found = {
                str(r["kind"]): (str(r["name"]), bool(r.get("namespaced")))
                for r in data.get("resources") or []
                if isinstance(r, dict) and "/" not in str(r.get("name", "")) and r.get("kind")
            }
            with self._lock:
                self._discovered[api_version] = found
        if kind not in found:
            raise KubeNotFound(f"the API has no kind {kind} in {api_version}")
        return found[kind]

    def collection_path(self, api_version: str, kind: str, namespace: str) -> tuple[str, bool]:
        plural, namespaced = self.resource(api_version, kind)
        base = group_path(api_version)
        return (
            f"{base}/namespaces/{namespace}/{plural}" if namespaced and namespace else f"{base}/{plural}"
        ), namespaced

    def list(self, api_version: str, kind: str, namespace: str) -> list[Obj]:
        """Every object of a kind in a namespace (cluster-scoped kinds: all of them) with one request."""
        path, _ = self.collection_path(api_version, kind, namespace)
        query = [("labelSelector", NOT_HELM_RECORDS)] if kind == "Secret" and api_version == "v1" else []
        data = self._request(f"listing {kind} in {namespace or 'the cluster'}", "GET", path, query=query)
        return [i for i in data.get("items") or [] if isinstance(i, dict)]

    def apply(self, obj: Obj, namespace: str, *, field_manager: str) -> Obj:
        """Server-side apply of `obj` (forcing conflicts: the object is ours to restore) as `field_manager`."""
        api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
        name = str((obj.get("metadata") or {}).get("name", ""))
        path, namespaced = self.collection_path(api_version, kind, namespace)
        body = {**obj, "metadata": {**(obj.get("metadata") or {})}}
        if namespaced:
            body["metadata"]["namespace"] = namespace
        query = [("fieldManager", field_manager), ("force", "true")]
        return self._request(f"applying {kind} {namespace}/{name}", "PATCH", f"{path}/{name}", query=query, body=body)


_CORE = frozenset(
    {
        "ConfigMap",
        "Secret",
        "Service",
        "ServiceAccount",
        "Pod",
        "PersistentVolumeClaim",
        "Endpoints",
        "Namespace",
        "PersistentVolume",
    }
)
