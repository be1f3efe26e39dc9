"""The resource table and the discovery documents built from it.

``ResourceRegistry`` knows every served resource type (built-ins below, plus one entry per
version of each established CustomResourceDefinition). From it come ``/api``, ``/apis``,
``/api/v1``, ``/apis/<group>/<version>`` (``APIResourceList``) and the aggregated discovery
document (``apidiscovery.k8s.io/v2`` ``APIGroupDiscoveryList``) client-go asks for first.
Thread-safe: CRDs are added and removed while requests are being served.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUB_VERBS = ("get", "patch", "update")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # "status", "scale", …
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    crd: bool = False  # served from a CustomResourceDefinition
    # Spec-less kinds whose every write counts as a change (ConfigMap, Secret…) have no generation.
    has_generation: bool = True

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"


def _r(group: str, version: str, kind: str, plural: str, namespaced: bool = True, short: tuple[str, ...] = (),
       sub: tuple[str, ...] = (), cats: tuple[str, ...] = (), verbs: tuple[str, ...] = ALL_VERBS,
       generation: bool = True) -> ResourceType:
    return ResourceType(group, version, kind, plural, namespaced, short, sub, cats, verbs, False, generation)


_ALL = ("all",)
BUILTINS: tuple[ResourceType, ...] = (
    _r("", "v1", "Namespace", "namespaces", False, ("ns",), ("status", "finalize"),
       verbs=("create", "delete", "get", "list", "patch", "update", "watch"), generation=False),
    _r("", "v1", "ConfigMap", "configmaps", short=("cm",), generation=False),
    _r("", "v1", "Secret", "secrets", generation=False),
    _r("", "v1", "Service", "services", short=("svc",), sub=("status",), cats=_ALL,
       verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"), generation=False),
    _r("", "v1", "ServiceAccount", "serviceaccounts", short=("sa",), generation=False),
    _r("", "v1", "Pod", "pods", short=("po",), sub=("status", "log"), cats=_ALL),
    _r("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", short=("pvc",), sub=("status",),
       generation=False),
    _r("", "v1", "PersistentVolume", "persistentvolumes", False, ("pv",), ("status",), generation=False),
    _r("", "v1", "Node", "nodes", False, ("no",), ("status",), generation=False),
    _r("", "v1", "Event", "events", short=("ev",), generation=False),
    _r("", "v1", "Endpoints", "endpoints", short=("ep",), generation=False),
    _r("", "v1", "LimitRange", "limitranges", short=("limits",), generation=False),
    _r("", "v1", "ResourceQuota", "resourcequotas", short=("quota",), sub=("status",), generation=False),
    _r("", "v1", "ReplicationController", "replicationcontrollers", short=("rc",), sub=("status", "scale"),
       cats=_ALL),
    _r("apps", "v1", "Deployment", "deployments", short=("deploy",), sub=("status", "scale"), cats=_ALL),
    _r("apps", "v1", "StatefulSet", "statefulsets", short=("sts",), sub=("status", "scale"), cats=_ALL),
    _r("apps", "v1", "DaemonSet", "daemonsets", short=("ds",), sub=("status",), cats=_ALL),
    _r("apps", "v1", "ReplicaSet", "replicasets", short=("rs",), sub=("status", "scale"), cats=_ALL),
    _r("apps", "v1", "ControllerRevision", "controllerrevisions"),
    _r("batch", "v1", "Job", "jobs", sub=("status",), cats=_ALL),
    _r("batch", "v1", "CronJob", "cronjobs", short=("cj",), sub=("status",), cats=_ALL),
    _r("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", short=("hpa",),
       sub=("status",), cats=_ALL),
    _r("networking.k8s.io", "v1", "Ingress", "ingresses", short=("ing",), sub=("status",)),
    _r("networking.k8s.io", "v1", "IngressClass", "ingressclasses", False),
    _r("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", short=("netpol",)),
    _r("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", generation=False),
    _r("rbac.authorization.k8s.io", "v1", "Role", "roles", generation=False),
    _r("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", generation=False),
    _r("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False, generation=False),
    _r("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False, generation=False),
    _r("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", short=("pdb",), sub=("status",)),
    _r("coordination.k8s.io", "v1", "Lease", "leases", generation=False),
    _r("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, ("sc",), generation=False),
    _r("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", False, ("pc",), generation=False),
    _r("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration",
       "validatingwebhookconfigurations", False),
    _r("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations",
       False),
    # Reviews are "create"-only and never stored: the sandbox allows everything.
    _r("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", False,
       verbs=("create",)),
    _r("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", False, verbs=("create",)),
    _r("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", False, verbs=("create",)),
    _r("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False,
       ("crd", "crds"), ("status",)),
)

_SCALE = {"group": "autoscaling", "version": "v1", "kind": "Scale"}


@dataclass
class ResourceRegistry:
    """All served resource types, looked up by (group, version, plural) or (group, kind)."""

    _types: dict[tuple[str, str, str], ResourceType] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cache: dict[str, Any] = field(default_factory=dict)
    # Called with (crd, served) whenever a CRD starts/stops being served (the OpenAPI documents follow).
    crd_listeners: list[Callable[[dict[str, Any], bool], None]] = field(default_factory=list)

    @classmethod
    def with_builtins(cls) -> ResourceRegistry:
        registry = cls()
        for rt in BUILTINS:
            registry._types[(rt.group, rt.version, rt.plural)] = rt
        return registry

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def by_kind(self, group: str, kind: str) -> ResourceType | None:
        for rt in list(self._types.values()):
            if rt.group == group and rt.kind == kind:
                return rt
        return None

    def all(self) -> list[ResourceType]:
        return list(self._types.values())

    # --- CustomResourceDefinitions ------------------------------------------------------------

    def set_crd(self, crd: dict[str, Any]) -> None:
        """Serve (or re-serve) every ``served`` version of a CRD's resource."""
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        group, plural = spec.get("group", ""), names.get("plural", "")
        with self._lock:
            self._drop(group, plural)
            for version in spec.get("versions") or []:
                if not version.get("served", True):
                    continue
                subs = tuple(k for k in ("status", "scale") if k in (version.get("subresources") or {}))
                rt = ResourceType(
                    group, version["name"], names.get("kind", ""), plural, spec.get("scope") != "Cluster",
                    tuple(names.get("shortNames") or ()), subs, tuple(names.get("categories") or ()), ALL_VERBS,
                    crd=True, has_generation=True,
                )
                self._types[(group, rt.version, plural)] = rt
            self._cache.clear()
        for listener in self.crd_listeners:
            listener(crd, True)

    def remove_crd(self, crd: dict[str, Any]) -> None:
        spec = crd.get("spec") or {}
        with self._lock:
            self._drop(spec.get("group", ""), (spec.get("names") or {}).get("plural", ""))
            self._cache.clear()
        for listener in self.crd_listeners:
            listener(crd, False)

    def _drop(self, group: str, plural: str) -> None:
        for key in [k for k in self._types if k[0] == group and k[2] == plural and self._types[k].crd]:
            del self._types[key]

    # --- documents -----------------------------------------------------------------------------

    def groups(self) -> dict[str, list[str]]:
        """group -> served versions, preferred (first registered) first; core group is ''."""
        result: dict[str, list[str]] = {}
        for rt in list(self._types.values()):
            versions = result.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        return result

    def api_versions(self) -> dict[str, Any]:
        return {"kind": "APIVersions", "apiVersion": "v1", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}

    def api_group_list(self) -> dict[str, Any]:
        groups = []
        for group, versions in self.groups().items():
            if not group:
                continue
            entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
            groups.append({"name": group, "versions": entries, "preferredVersion": entries[0]})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        types = [rt for rt in list(self._types.values()) if rt.group == group and rt.version == version]
        if not types:
            return None
        resources: list[dict[str, Any]] = []
        for rt in types:
            entry: dict[str, Any] = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
                                     "kind": rt.kind, "verbs": list(rt.verbs)}
            if rt.short_names:
                entry["shortNames"] = list(rt.short_names)
            if rt.categories:
                entry["categories"] = list(rt.categories)
            resources.append(entry)
            for sub in rt.subresources:
                sub_entry: dict[str, Any] = {"name": f"{rt.plural}/{sub}", "singularName": "",
                                             "namespaced": rt.namespaced, "kind": rt.kind, "verbs": list(SUB_VERBS)}
                if sub == "scale":
                    sub_entry.update(_SCALE)
                elif sub == "log":
                    sub_entry.update(kind="Pod", verbs=["get"])
                elif sub == "finalize":
                    sub_entry["verbs"] = ["update"]
                resources.append(sub_entry)
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}

    def aggregated(self, core: bool) -> dict[str, Any]:
        """``APIGroupDiscoveryList`` (apidiscovery.k8s.io/v2) for ``/api`` (core) or ``/apis``."""
        key = "core" if core else "apis"
        with self._lock:
            if key in self._cache:
                return self._cache[key]  # type: ignore[no-any-return]
        items = []
        for group, versions in self.groups().items():
            if bool(group) == core:
                continue
            version_entries = []
            for version in versions:
                resources = []
                for rt in [t for t in list(self._types.values()) if t.group == group and t.version == version]:
                    kind = {"group": group, "version": version, "kind": rt.kind}
                    entry: dict[str, Any] = {
                        "resource": rt.plural, "responseKind": kind, "scope": "Namespaced" if rt.namespaced
                        else "Cluster", "singularResource": rt.singular, "verbs": list(rt.verbs),
                    }
                    if rt.short_names:
                        entry["shortNames"] = list(rt.short_names)
                    if rt.categories:
                        entry["categories"] = list(rt.categories)
                    subs = []
                    for sub in rt.subresources:
                        response = dict(_SCALE) if sub == "scale" else dict(kind)
                        subs.append({"subresource": sub, "responseKind": response,
                                     "verbs": ["get"] if sub == "log" else list(SUB_VERBS)})
                    if subs:
                        entry["subresources"] = subs
                    resources.append(entry)
                version_entries.append({"version": version, "resources": resources, "freshness": "Current"})
            items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": version_entries})
        doc = {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {},
               "items": items}
        with self._lock:
            self._cache[key] = doc
        return doc
