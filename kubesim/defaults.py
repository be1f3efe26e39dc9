"""Defaulting applied to every written object, like the apiserver's defaulters and registry
strategies: fields clients read back (Deployment replicas, Service clusterIP, Job selector,
Namespace phase, Secret type …). ``apply_defaults`` mutates the fresh dict it is given.
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
import threading
from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]


class ClusterIPAllocator:
    """Hands out Service clusterIPs from 10.96.0.0/12 (skipping the ones in use) and nodePorts
    from 30000-32767 (round robin)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._used: set[str] = set()
        self._next = itertools.count(10)
        self._base = ipaddress.IPv4Address("10.96.0.0")
        self._node_ports = itertools.cycle(range(30000, 32768))

    def reserve(self, ip: str) -> None:
        with self._lock:
            self._used.add(ip)

    def node_port(self) -> int:
        with self._lock:
            return next(self._node_ports)

    def allocate(self) -> str:
        with self._lock:
            while True:
                ip = str(self._base + next(self._next))
                if ip not in self._used:
                    self._used.add(ip)
                    return ip


def _containers(pod_spec: Any) -> None:
    """The PodSpec defaulters (pods and workload templates alike)."""
    if not isinstance(pod_spec, dict):
        return
    pod_spec.setdefault("restartPolicy", "Always")
    pod_spec.setdefault("securityContext", {})
    # serviceAccount is the deprecated spelling the apiserver keeps in step with serviceAccountName
    if pod_spec.get("serviceAccountName") and not pod_spec.get("serviceAccount"):
        pod_spec["serviceAccount"] = pod_spec["serviceAccountName"]
    pod_spec.setdefault("dnsPolicy", "ClusterFirst")
    pod_spec.setdefault("schedulerName", "default-scheduler")
    pod_spec.setdefault("terminationGracePeriodSeconds", 30)
    for key in ("containers", "initContainers"):
        for container in pod_spec.get(key) or []:
            if not isinstance(container, dict):
                continue
            image = str(container.get("image", ""))
            tag = image.rsplit("/", 1)[-1]
            container.setdefault("imagePullPolicy",
                                 "Always" if ":" not in tag or tag.endswith(":latest") else "IfNotPresent")
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            container.setdefault("resources", {})
            for port in container.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")


def _template(obj: Obj) -> None:
    template = (obj.get("spec") or {}).get("template")
    if isinstance(template, dict):
        _containers(template.get("spec"))


def _deployment(obj: Obj, old: Obj | None, ips: ClusterIPAllocator) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        strategy.setdefault("rollingUpdate", {"maxSurge": "25%", "maxUnavailable": "25%"})
    _template(obj)


def _statefulset(obj: Obj, old: Obj | None, ips: ClusterIPAllocator) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    strategy = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
    if strategy.get("type") == "RollingUpdate":
        strategy.setdefault("rollingUpdate", {"partition": 0})
    _template(obj)


def _daemonset(obj: Obj, old: Obj | None, ips: ClusterIPAllocator) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("updateStrategy", {"type": "RollingUpdate",
                                       "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}})
    _template(obj)


def _replicaset(obj: Obj, old: Obj | None, ips: ClusterIPAllocator) -> None:
    obj.setdefault("spec", {}).setdefault("replicas", 1)
    _template(obj)


def _job(obj: Obj, old: Obj | None, ips: ClusterIPAllocator) -> None:
    spec = obj.setdefault("spec", {})
    for key, value in (("parallelism", 1), ("completions", 1), ("backoffLimit", 6),
                       ("completionMode", "NonIndexed"), ("suspend", False), ("manualSelector", False)):
        spec.setdefault(key, value)
    spec.setdefault("podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed")
    template = spec.setdefault("template", {})
    _containers(template.get("spec"))
    template.setdefault("spec", {}).setdefault("restartPolicy", "Never")
    if old is not None:  # the generated selector and labels are fixed at creation
        if "selector" in (old.get("spec") or {}):
            spec.setdefault("selector", old["spec"]["selector"])
            old_labels = ((old["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
            labels = template.setdefault("metadata", {}).setdefault("labels", {})
            for key in ("batch.kubernetes.io/controller-uid", "batch.kubernetes.io/job-name",
                        "controller-uid", "job-name"):
                if key in old_labels:
                    labels.setdefault(key, old_labels[key])
        return
    if spec.get("manualSelector"):
        return
    uid = obj["metadata"].get("uid", "")
    name = obj["metadata"].get("name", "")
    spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    labels.update({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
                   "controller-uid": uid, "job-name": name})
    if not obj["metadata"].get("labels"):  # a Job without labels of its own takes its pods' (as the strategy does)
        obj["metadata"]["labels"] = dict(labels)


def _cronjob(obj: Obj, old: Obj | None, ips: ClusterIPAllocator) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)


def _service(obj: Obj, old: Obj | None, ips: ClusterIPAllocator) -> None:
    spec = obj.setdefault("spec", {})
    status = obj.get("status")
    obj["status"] = status if isinstance(status, dict) else {}
    obj["status"].setdefault("loadBalancer", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])
    if spec["type"] == "ExternalName":
        return
    spec.setdefault("internalTrafficPolicy", "Cluster")
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    old_ip = ((old or {}).get("spec") or {}).get("clusterIP")
    if "clusterIP" not in spec or spec["clusterIP"] == "":
        spec["clusterIP"] = old_ip or ips.allocate()
    elif spec["clusterIP"] != "None":
        ips.reserve(spec["clusterIP"])
    spec.setdefault("clusterIPs", [spec["clusterIP"]])
    if spec["type"] in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
        # nodePorts are allocated once and kept across updates that leave them out
        kept = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                for p in ((old or {}).get("spec") or {}).get("ports") or [] if isinstance(p, dict)}
        for port in spec.get("ports") or []:
            if isinstance(port, dict) and not port.get("nodePort"):
                port["nodePort"] = kept.get((port.get("port"), port.get("protocol", "TCP"))) or ips.node_port()


def _namespace(obj: Obj, old: Obj | None, ips: ClusterIPAllocator) -> None:
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    status = obj.setdefault("status", {})
    status.setdefault("phase", "Active")
    labels = obj["metadata"].setdefault("labels", {})
    labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]


def _secret(obj: Obj, old: Obj | None, ips: ClusterIPAllocator) -> None:
    obj.setdefault("type", "Opaque")
    # stringData is write-only: the apiserver folds it into data (base64) and never stores it.
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict):
        data = obj.setdefault("data", {}) or {}
        obj["data"] = data
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def _pvc(obj: Obj, old: Obj | None, ips: ClusterIPAllocator) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("volumeMode", "Filesystem")
    spec.setdefault("storageClassName", "standard")


# What the admission plugins add to every new Pod (DefaultTolerationSeconds, Priority, ServiceAccount).
DEFAULT_TOLERATIONS = ({"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists",
                        "tolerationSeconds": 300},
                       {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists",
                        "tolerationSeconds": 300})
_SUFFIX = "bcdfghjklmnpqrstvwxz2456789"
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


def admit_pod(pod: Obj) -> None:
    """A new Pod as the apiserver stores it: PodSpec defaults, then what admission adds (a service account and
    its projected token volume, priority, the not-ready/unreachable tolerations). Controllers' pods too."""
    spec = pod.setdefault("spec", {})
    _containers(spec)
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    tolerations = spec.setdefault("tolerations", [])
    for toleration in DEFAULT_TOLERATIONS:
        if not any(isinstance(t, dict) and t.get("key") == toleration["key"] for t in tolerations):
            tolerations.append(dict(toleration))
    if spec.get("automountServiceAccountToken") is False:
        return
    volumes = spec.setdefault("volumes", [])
    if any(isinstance(v, dict) and str(v.get("name", "")).startswith("kube-api-access-") for v in volumes):
        return
    import random

    name = "kube-api-access-" + "".join(random.choices(_SUFFIX, k=5))
    volumes.append({"name": name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"items": [{"key": "ca.crt", "path": "ca.crt"}], "name": "kube-root-ca.crt"}},
        {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                                    "path": "namespace"}]}}]}})
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            mounts = container.get("volumeMounts") if isinstance(container, dict) else None
            if isinstance(container, dict) and not any(
                    isinstance(m, dict) and m.get("mountPath") == TOKEN_PATH for m in mounts or []):
                container.setdefault("volumeMounts", []).append({"mountPath": TOKEN_PATH, "name": name,
                                                                 "readOnly": True})


def qos_class(pod_spec: Obj) -> str:
    """The pod's QoS class from its containers' requests and limits (what the apiserver writes to status)."""
    resources = [c.get("resources") or {} for c in pod_spec.get("containers") or [] if isinstance(c, dict)]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all({"cpu", "memory"} <= set(r.get("limits") or {})
                     and all((r.get("limits") or {}).get(k) == v for k, v in (r.get("requests") or {}).items())
                     for r in resources)
    return "Guaranteed" if guaranteed else "Burstable"


def _pod(obj: Obj, old: Obj | None, ips: ClusterIPAllocator) -> None:
    if old is None:
        admit_pod(obj)
    else:
        _containers(obj.setdefault("spec", {}))


_DEFAULTERS: dict[tuple[str, str], Callable[[Obj, Obj | None, ClusterIPAllocator], None]] = {
    ("apps", "Deployment"): _deployment,
    ("apps", "StatefulSet"): _statefulset,
    ("apps", "DaemonSet"): _daemonset,
    ("apps", "ReplicaSet"): _replicaset,
    ("batch", "Job"): _job,
    ("batch", "CronJob"): _cronjob,
    ("", "Service"): _service,
    ("", "Namespace"): _namespace,
    ("", "Secret"): _secret,
    ("", "PersistentVolumeClaim"): _pvc,
    ("", "Pod"): _pod,
}


def apply_defaults(group: str, kind: str, obj: Obj, old: Obj | None, ips: ClusterIPAllocator) -> None:
    defaulter = _DEFAULTERS.get((group, kind))
    if defaulter is not None:
        defaulter(obj, old, ips)
