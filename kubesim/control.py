"""The sandbox-only control API under ``/_sandbox/``: request statistics, runtime config, faults.

Endpoints (JSON in, JSON out):

- ``GET /_sandbox/stats`` -> ``{"requests", "writes", "by_verb": {verb: n},
  "by_resource": {"secrets": {"list": n, …}, "deployments.apps": {…}}, "since", "objects",
  "resourceVersion"}``. ``requests`` counts Kubernetes API calls (discovery and OpenAPI included,
  ``/_sandbox/`` excluded); ``writes`` counts mutating calls (create, update, patch, delete,
  deletecollection), whether they succeeded or not.
- ``POST /_sandbox/reset-stats`` -> the stats before the reset; counters start again at zero.
- ``GET /_sandbox/config``, ``PUT /_sandbox/config`` ``{"ready_delay": 0.05}``: seconds before a
  Deployment/StatefulSet/DaemonSet/Pod is ready and a Job finishes.
- ``POST /_sandbox/faults`` with one fault, answers 201 ``{"id": n, …}``:
    - ``{"type": "fail-writes", "resource": "secrets", "group": "", "namespace": null, "name": null,
      "verbs": ["create", "update", "patch", "delete"], "count": 1, "code": 500}`` — the next
      ``count`` matching writes fail with ``code`` (500 InternalError, 409 Conflict, 429, 503 …);
      ``resource``/``namespace``/``name`` may be omitted (any) and are fnmatch patterns;
    - ``{"type": "latency", "seconds": 0.2, "resource": "*", "verbs": [...], "count": null}`` — add
      latency to matching requests (``count`` null: until cleared);
    - ``{"type": "job-fail", "namespace": "ns", "name": "db-sync-*"}`` — matching Jobs fail
      (condition ``Failed=True``) instead of completing;
    - ``{"type": "never-ready", "kind": "Deployment", "namespace": "ns", "name": "web"}`` —
      matching Deployments/StatefulSets/DaemonSets never become ready;
    - ``{"type": "slow", "kind": "Job", "name": "db-sync-*", "seconds": 5}`` — matching objects
      (Jobs, workloads, Pods) take ``seconds`` instead of the readiness delay to finish/be ready.
- ``GET /_sandbox/faults`` lists active faults; ``DELETE /_sandbox/faults`` clears all;
  ``DELETE /_sandbox/faults/<id>`` clears one.

Objects can also ask for a fault themselves (handy in charts): annotation
``kubesim.io/fail: "true"`` on a Job (or a run-to-completion Pod) makes it fail; ``kubesim.io/never-ready: "true"`` on a
workload keeps it unready (on the object itself or on its pod template — the latter is also a
template change, hence a rollout, as a broken image would be).
"""

from __future__ import annotations

import fnmatch
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from kubesim import errors
from kubesim.store import Store

Obj = dict[str, Any]
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
FAIL_ANNOTATION = "kubesim.io/fail"
NEVER_READY_ANNOTATION = "kubesim.io/never-ready"
_REASONS = {409: "Conflict", 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
            504: "Timeout", 403: "Forbidden", 404: "NotFound"}


@dataclass
class Fault:
    id: int
    type: str
    resource: str = "*"
    group: str = "*"
    namespace: str = "*"
    name: str = "*"
    kind: str = "*"
    verbs: list[str] = field(default_factory=lambda: sorted(WRITE_VERBS))
    count: int | None = 1
    code: int = 500
    seconds: float = 0.0

    def matches(self, verb: str, group: str, resource: str, namespace: str, name: str) -> bool:
        return (verb in self.verbs and fnmatch.fnmatchcase(resource, self.resource)
                and fnmatch.fnmatchcase(group, self.group) and fnmatch.fnmatchcase(namespace, self.namespace)
                and fnmatch.fnmatchcase(name, self.name))

    def matches_object(self, obj: Obj) -> bool:
        meta = obj.get("metadata") or {}
        return (fnmatch.fnmatchcase(obj.get("kind", ""), self.kind)
                and fnmatch.fnmatchcase(meta.get("namespace") or "", self.namespace)
                and fnmatch.fnmatchcase(meta.get("name") or "", self.name))


_FAULT_TYPES = {"fail-writes", "latency", "job-fail", "never-ready", "slow"}


def parse_fault(body: Any, fault_id: int) -> Fault:
    if not isinstance(body, dict):
        raise errors.bad_request("a fault must be a JSON object")
    kind = body.get("type")
    if kind not in _FAULT_TYPES:
        raise errors.bad_request(f"fault type must be one of {sorted(_FAULT_TYPES)}, got {kind!r}")
    unknown = set(body) - {f for f in Fault.__dataclass_fields__ if f != "id"}
    if unknown:
        raise errors.bad_request(f"unknown fault fields: {sorted(unknown)}")
    values = {k: v for k, v in body.items() if v is not None}
    # Only fail-writes is one-shot by default; the others hold until cleared.
    values["count"] = body.get("count", 1) if kind == "fail-writes" else body.get("count")
    if values["count"] is not None and (not isinstance(values["count"], int) or values["count"] < 1):
        raise errors.bad_request("count must be a positive integer or null")
    if kind == "latency":
        values.setdefault("verbs", ["get", "list", "watch", *sorted(WRITE_VERBS)])
    if kind in ("latency", "slow") and (not isinstance(values.get("seconds"), int | float)
                                        or values["seconds"] < 0):
        raise errors.bad_request(f"a {kind} fault needs seconds >= 0")
    if kind == "job-fail":
        values["kind"] = "Job"
    if kind == "fail-writes" and values.get("code", 500) not in _REASONS:
        raise errors.bad_request(f"code must be one of {sorted(_REASONS)}")
    if not isinstance(values.get("verbs", []), list):
        raise errors.bad_request("verbs must be a list")
    return Fault(id=fault_id, **values)


class Control:
    """Stats, runtime config and fault registry; thread-safe."""

    def __init__(self, store: Store, ready_delay: float) -> None:
        self.store = store
        self.ready_delay = ready_delay
        # Called after faults or config change, so controllers re-evaluate what they skipped.
        self.on_change: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._faults: list[Fault] = []
        self._reset()

    def _reset(self) -> None:
        self._requests = 0
        self._writes = 0
        self._by_verb: Counter[str] = Counter()
        self._by_resource: dict[str, Counter[str]] = {}
        self._since = time.time()

    # --- stats ---------------------------------------------------------------------------------

    def record(self, verb: str, resource: str | None) -> None:
        with self._lock:
            self._requests += 1
            if verb in WRITE_VERBS:
                self._writes += 1
            self._by_verb[verb] += 1
            if resource:
                self._by_resource.setdefault(resource, Counter())[verb] += 1

    def stats(self) -> Obj:
        with self._lock:
            return {"requests": self._requests, "writes": self._writes, "by_verb": dict(self._by_verb),
                    "by_resource": {r: dict(c) for r, c in sorted(self._by_resource.items())},
                    "since": self._since, "objects": sum(1 for _ in self.store.all_objects()),
                    "resourceVersion": self.store.resource_version}

    def reset_stats(self) -> Obj:
        before = self.stats()
        with self._lock:
            self._reset()
        return before

    # --- faults --------------------------------------------------------------------------------

    def add_fault(self, body: Any) -> Fault:
        with self._lock:
            fault = parse_fault(body, next(self._ids))
            self._faults.append(fault)
        self._changed()
        return fault

    def set_ready_delay(self, seconds: float) -> None:
        self.ready_delay = seconds
        self._changed()

    def _changed(self) -> None:
        for callback in self.on_change:
            callback()

    def faults(self) -> list[Obj]:
        with self._lock:
            return [asdict(f) for f in self._faults]

    def clear_faults(self, fault_id: int | None = None) -> int:
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if fault_id is not None and f.id != fault_id]
            cleared = before - len(self._faults)
        self._changed()
        return cleared

    def before_request(self, verb: str, group: str, resource: str, namespace: str, name: str) -> float:
        """Latency to add (seconds); raises the injected error when a fail-writes fault matches."""
        latency = 0.0
        with self._lock:
            for fault in list(self._faults):
                if fault.type not in ("fail-writes", "latency") or not fault.matches(verb, group, resource,
                                                                                      namespace, name):
                    continue
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                if fault.type == "latency":
                    latency += fault.seconds
                    continue
                reason = _REASONS[fault.code]
                if fault.code == 409:
                    raise errors.conflict(resource, name, group, "sandbox: injected conflict")
                raise errors.ApiError(fault.code, reason, f"sandbox: injected {fault.code} for {verb} {resource}"
                                      f"{'/' + name if name else ''}", {"name": name, "kind": resource})
        return latency

    def _object_fault(self, fault_type: str, obj: Obj, annotation: str) -> bool:
        # The annotation counts on the object or on its pod template (the pods are what fail).
        template_meta = ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}
        for meta in (obj.get("metadata") or {}, template_meta):
            if (meta.get("annotations") or {}).get(annotation) == "true":
                return True
        with self._lock:
            return any(f.type == fault_type and f.matches_object(obj) for f in self._faults)

    def delay_for(self, obj: Obj) -> float:
        """Seconds before ``obj`` is ready/finished: a matching "slow" fault, else the readiness delay."""
        with self._lock:
            slow = [f.seconds for f in self._faults if f.type == "slow" and f.matches_object(obj)]
        return max(slow) if slow else self.ready_delay

    def never_ready(self, obj: Obj) -> bool:
        return self._object_fault("never-ready", obj, NEVER_READY_ANNOTATION)

    def job_fails(self, obj: Obj) -> bool:
        return self._object_fault("job-fail", obj, FAIL_ANNOTATION)
