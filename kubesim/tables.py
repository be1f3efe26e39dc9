"""Server-side printing: ``meta.k8s.io/v1`` ``Table`` answers for ``kubectl get``.

kubectl asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints the columns
it gets back. Columns follow the apiserver's printers for the common kinds (Deployment READY /
UP-TO-DATE / AVAILABLE, Pod STATUS, Service CLUSTER-IP …); custom resources get their CRD's
``additionalPrinterColumns``; other kinds get NAME and AGE.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]
Column = tuple[str, str, Callable[[Obj], Any]]  # (name, type, cell)


def human_age(timestamp: str | None, now: datetime | None = None) -> str:
    """Like k8s.io/apimachinery duration.HumanDuration, coarse to two units."""
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<invalid>"
    seconds = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h{minutes % 60}m" if hours < 8 and minutes % 60 else f"{hours}h"
    return f"{hours // 24}d{hours % 24}h" if hours // 24 < 8 and hours % 24 else f"{hours // 24}d"


def _s(obj: Obj, *path: str, default: Any = 0) -> Any:
    node: Any = obj
    for part in path:
        if not isinstance(node, dict):
            return default
        node = node.get(part)
    return default if node is None else node


def _age(obj: Obj) -> str:
    return human_age(_s(obj, "metadata", "creationTimestamp", default=None))


def _name(obj: Obj) -> str:
    return str(_s(obj, "metadata", "name", default=""))


def _job_status(obj: Obj) -> str:
    for cond in _s(obj, "status", "conditions", default=[]):
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed", "Suspended"):
            return str(cond["type"])
    return "Running"


def _ports(obj: Obj) -> str:
    ports = _s(obj, "spec", "ports", default=[])
    return ",".join(f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/"
                    f"{p.get('protocol', 'TCP')}" for p in ports) or "<none>"


def _pod_ready(obj: Obj) -> str:
    statuses = _s(obj, "status", "containerStatuses", default=[])
    total = len(_s(obj, "spec", "containers", default=[]))
    return f"{sum(1 for c in statuses if c.get('ready'))}/{total}"


_AGE: Column = ("Age", "string", _age)
_COLUMNS: dict[tuple[str, str], list[Column]] = {
    ("apps", "Deployment"): [
        ("Ready", "string", lambda o: f"{_s(o, 'status', 'readyReplicas')}/{_s(o, 'spec', 'replicas')}"),
        ("Up-to-date", "integer", lambda o: _s(o, "status", "updatedReplicas")),
        ("Available", "integer", lambda o: _s(o, "status", "availableReplicas")), _AGE],
    ("apps", "ReplicaSet"): [
        ("Desired", "integer", lambda o: _s(o, "spec", "replicas")),
        ("Current", "integer", lambda o: _s(o, "status", "replicas")),
        ("Ready", "integer", lambda o: _s(o, "status", "readyReplicas")), _AGE],
    ("apps", "StatefulSet"): [
        ("Ready", "string", lambda o: f"{_s(o, 'status', 'readyReplicas')}/{_s(o, 'spec', 'replicas')}"), _AGE],
    ("apps", "DaemonSet"): [
        ("Desired", "integer", lambda o: _s(o, "status", "desiredNumberScheduled")),
        ("Current", "integer", lambda o: _s(o, "status", "currentNumberScheduled")),
        ("Ready", "integer", lambda o: _s(o, "status", "numberReady")),
        ("Up-to-date", "integer", lambda o: _s(o, "status", "updatedNumberScheduled")),
        ("Available", "integer", lambda o: _s(o, "status", "numberAvailable")), _AGE],
    ("batch", "Job"): [
        ("Status", "string", _job_status),
        ("Completions", "string",
         lambda o: f"{_s(o, 'status', 'succeeded')}/{_s(o, 'spec', 'completions', default=1)}"),
        _AGE],
    ("", "Pod"): [
        ("Ready", "string", _pod_ready), ("Status", "string", lambda o: _s(o, "status", "phase", default="Pending")),
        ("Restarts", "integer", lambda o: 0), _AGE],
    ("", "Service"): [
        ("Type", "string", lambda o: _s(o, "spec", "type", default="ClusterIP")),
        ("Cluster-IP", "string", lambda o: _s(o, "spec", "clusterIP", default="<none>")),
        ("External-IP", "string", lambda o: ",".join(i.get("ip", "") for i in _s(
            o, "status", "loadBalancer", "ingress", default=[])) or "<none>"),
        ("Port(s)", "string", _ports), _AGE],
    ("", "ConfigMap"): [("Data", "integer", lambda o: len(_s(o, "data", default={})) + len(
        _s(o, "binaryData", default={}))), _AGE],
    ("", "Secret"): [("Type", "string", lambda o: _s(o, "type", default="Opaque")),
                     ("Data", "integer", lambda o: len(_s(o, "data", default={}))), _AGE],
    ("", "Namespace"): [("Status", "string", lambda o: _s(o, "status", "phase", default="Active")), _AGE],
    ("", "PersistentVolumeClaim"): [
        ("Status", "string", lambda o: _s(o, "status", "phase", default="Pending")),
        ("Capacity", "string", lambda o: _s(o, "status", "capacity", "storage", default="")),
        ("StorageClass", "string", lambda o: _s(o, "spec", "storageClassName", default="")), _AGE],
    ("apiextensions.k8s.io", "CustomResourceDefinition"): [
        ("Created At", "date", lambda o: _s(o, "metadata", "creationTimestamp", default=""))],
}


def _json_path(path: str) -> Callable[[Obj], Any]:
    """A CRD printer column's ``jsonPath`` — the simple ``.a.b`` form CRDs use in practice."""
    parts = [p for p in path.strip().lstrip(".").split(".") if p]

    def cell(obj: Obj) -> Any:
        value = _s(obj, *parts, default=None)
        return "<none>" if value is None else value

    return cell


def crd_columns(crd: Obj | None, version: str) -> list[Column] | None:
    """``additionalPrinterColumns`` of one CRD version (None: the CRD defines none)."""
    for ver in ((crd or {}).get("spec") or {}).get("versions") or []:
        if isinstance(ver, dict) and ver.get("name") == version and ver.get("additionalPrinterColumns"):
            return [(str(c.get("name", "")), str(c.get("type", "string")), _json_path(str(c.get("jsonPath", ""))))
                    for c in ver["additionalPrinterColumns"] if isinstance(c, dict)]
    return None


def to_table(group: str, kind: str, items: list[Obj], resource_version: str, cont: str | None = None,
             columns_override: list[Column] | None = None) -> Obj:
    columns = [("Name", "string", _name), *(columns_override or _COLUMNS.get((group, kind), [_AGE]))]
    definitions = [{"name": name, "type": typ, "format": "name" if name == "Name" else "", "description": name,
                    "priority": 0} for name, typ, _ in columns]
    rows = [{"cells": [cell(obj) for _, _, cell in columns],
             "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                        "metadata": obj.get("metadata") or {}}} for obj in items]
    meta: Obj = {"resourceVersion": resource_version}
    if cont:
        meta["continue"] = cont
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": definitions,
            "rows": rows}
