"""What the simulated controllers write: workload status, ReplicaSets for Deployments, Job results.

Pure functions from a live object (plus the stage context) to the next object. They mirror the
fields real controllers set and clients check: kstatus (helm ``--wait``) and ``kubectl rollout
status`` read ``observedGeneration``, the replica counters and the ``Available``/``Complete``/
``Failed`` conditions. A Deployment's pod-template hash (the ``pod-template-hash`` label of its
ReplicaSet) changes only when ``spec.template`` changes; each such change is one rollout and bumps
the ``deployment.kubernetes.io/revision`` annotation. A Job runs one Pod (labelled ``job-name``
/ ``batch.kubernetes.io/job-name``, owned by the Job) that ends Succeeded or Failed with it.
Deployments (through their ReplicaSet), StatefulSets (``<name>-<ordinal>``) and DaemonSets (one
simulated node) get Pods that become Running/Ready after the readiness delay; a rollout replaces
them. Workload readiness is still decided by the workload's own stages, not by its Pods.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import random
import uuid
from typing import Any

from kubesim.controllers.engine import StageContext
from kubesim.defaults import admit_pod, qos_class
from kubesim.errors import ApiError
from kubesim.patch.apply import record_update
from kubesim.store import Store

Obj = dict[str, Any]
REVISION = "deployment.kubernetes.io/revision"
RS_GR = ("apps", "replicasets")
PODS_GR = ("", "pods")
PVC_GR = ("", "persistentvolumeclaims")
_SAFE = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet k8s uses for generated suffixes


def now() -> str:
    from kubesim.api import now as api_now

    return api_now()


def template_hash(template: Any) -> str:
    digest = int.from_bytes(hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()[:8], "big")
    out = []
    for _ in range(10):
        digest, rem = divmod(digest, len(_SAFE))
        out.append(_SAFE[rem])
    return "".join(out)


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def _status(obj: Obj) -> Obj:
    return obj.get("status") or {}


def _replicas(obj: Obj) -> int:
    value = _spec(obj).get("replicas", 1)
    return value if isinstance(value, int) else 1


def _condition(type_: str, status: str, reason: str, message: str, previous: list[Obj] | None = None) -> Obj:
    stamp = now()
    for cond in previous or []:
        if cond.get("type") == type_ and cond.get("status") == status:
            return {**cond, "reason": reason, "message": message, "lastUpdateTime": stamp}
    return {"type": type_, "status": status, "reason": reason, "message": message, "lastUpdateTime": stamp,
            "lastTransitionTime": stamp}


CONTROLLER = "kube-controller-manager"  # the field manager of what controllers write, as the real ones name it
KUBELET = "kubelet"


def _with_status(obj: Obj, status: Obj, manager: str = CONTROLLER) -> Obj:
    """``obj`` with a new status, written as the controller (or kubelet) does: an Update of the status
    subresource, recorded in managedFields under its manager."""
    new = copy.deepcopy(obj)
    new["status"] = status
    return _owned(obj, new, manager, "status")


def _owned(old: Obj | None, new: Obj, manager: str = CONTROLLER, subresource: str = "") -> Obj:
    return record_update(old, new, manager, subresource=subresource)


# --- Deployment ----------------------------------------------------------------------------


def deployment_needs_rollout(obj: Obj, ctx: StageContext) -> bool:
    return _status(obj).get("observedGeneration") != _meta(obj).get("generation")


def _owned_replicasets(store: Store, deploy: Obj) -> list[Obj]:
    uid = _meta(deploy).get("uid")
    items, _ = store.list(RS_GR, _meta(deploy).get("namespace") or "")
    return [rs for rs in items if any(r.get("uid") == uid for r in _meta(rs).get("ownerReferences") or [])]


EVENTS_GR = ("", "events")


def record_event(store: Store, obj: Obj, reason: str, message: str, *, warning: bool = False,
                 component: str = "kubesim-controller") -> None:
    """A core/v1 Event about ``obj``, as ``kubectl describe`` and ``kubectl events`` show them."""
    meta = _meta(obj)
    stamp = now()
    event = {"apiVersion": "v1", "kind": "Event",
             "metadata": {"name": f"{meta.get('name')}.{uuid.uuid4().hex[:16]}",
                          "namespace": meta.get("namespace") or "default", "uid": str(uuid.uuid4()),
                          "creationTimestamp": stamp},
             "involvedObject": {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
                                "name": meta.get("name"), "namespace": meta.get("namespace"),
                                "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")},
             "reason": reason, "message": message, "type": "Warning" if warning else "Normal", "count": 1,
             "firstTimestamp": stamp, "lastTimestamp": stamp, "source": {"component": component},
             "reportingComponent": component, "reportingInstance": "kubesim"}
    with contextlib.suppress(ApiError):
        store.create(EVENTS_GR, event)


def _owned_by(store: Store, gr: Any, namespace: str, uid: str | None) -> list[Obj]:
    items, _ = store.list(gr, namespace)
    return [o for o in items if any(r.get("uid") == uid for r in _meta(o).get("ownerReferences") or [])]


def _new_pod(owner: Obj, owner_kind: str, template: Obj, name: str, extra_labels: Obj,
             generate_name: str | None = None, status: Obj | None = None) -> Obj:
    """A Pod as a workload controller creates it: template labels, owned by ``owner``, admitted as the
    apiserver admits it, Pending (the pod-run stage makes it Running and Ready after the readiness delay)."""
    meta = _meta(owner)
    pod_meta: Obj = {"name": name, "generateName": generate_name or f"{meta['name']}-",
                     "namespace": meta.get("namespace") or "", "uid": str(uuid.uuid4()),
                     "creationTimestamp": now(), "generation": 1,
                     "labels": {**(_meta(template).get("labels") or {}), **extra_labels},
                     "ownerReferences": [{"apiVersion": owner.get("apiVersion", "apps/v1"), "kind": owner_kind,
                                          "name": meta["name"], "uid": meta.get("uid"), "controller": True,
                                          "blockOwnerDeletion": True}]}
    if _meta(template).get("annotations"):
        pod_meta["annotations"] = dict(_meta(template)["annotations"])
    pod: Obj = {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta,
                "spec": copy.deepcopy(template.get("spec") or {})}
    admit_pod(pod)
    pod = _owned(None, pod)
    pod["spec"]["nodeName"] = "kubesim-node"  # bound by the scheduler: not the creator's field
    pod["status"] = status or {"phase": "Pending"}
    return pod


def _create_pod(store: Store, owner: Obj, pod: Obj) -> bool:
    """Create a controller's Pod and the Events the real controllers and scheduler record for it."""
    try:
        store.create(PODS_GR, pod)
    except ApiError:
        return False
    name, namespace = pod["metadata"]["name"], pod["metadata"]["namespace"]
    if owner.get("kind") == "StatefulSet":
        record_event(store, owner, "SuccessfulCreate",
                     f"create Pod {name} in StatefulSet {_meta(owner)['name']} successful",
                     component="statefulset-controller")
    else:
        record_event(store, owner, "SuccessfulCreate", f"Created pod: {name}",
                     component="job-controller" if owner.get("kind") == "Job" else "replicaset-controller")
    record_event(store, pod, "Scheduled", f"Successfully assigned {namespace}/{name} to kubesim-node",
                 component="default-scheduler")
    return True


def _delete_all(store: Store, gr: Any, objs: list[Obj], owner: Obj | None = None) -> None:
    for obj in objs:
        try:
            store.delete(gr, _meta(obj).get("namespace") or "", _meta(obj)["name"])
        except ApiError:
            continue
        if owner is not None and owner.get("kind") == "StatefulSet":
            record_event(store, owner, "SuccessfulDelete",
                         f"delete Pod {_meta(obj)['name']} in StatefulSet {_meta(owner)['name']} successful",
                         component="statefulset-controller")
        elif owner is not None:
            record_event(store, owner, "SuccessfulDelete", f"Deleted pod: {_meta(obj)['name']}",
                         component="replicaset-controller")


def _sync_replicaset_pods(ctx: StageContext, rs: Obj, replicas: int) -> None:
    namespace = _meta(rs).get("namespace") or ""
    pods = _owned_by(ctx.store, PODS_GR, namespace, _meta(rs).get("uid"))
    _delete_all(ctx.store, PODS_GR, pods[replicas:], rs)
    template = _spec(rs).get("template") or {}
    for _ in range(replicas - len(pods)):
        name = f"{_meta(rs)['name']}-{''.join(random.choices(_SAFE, k=5))}"
        _create_pod(ctx.store, rs, _new_pod(rs, "ReplicaSet", template, name, {}, f"{_meta(rs)['name']}-"))


# Deployment annotations the controller does not copy onto its ReplicaSets (it writes its own there).
_NOT_COPIED = frozenset({"kubectl.kubernetes.io/last-applied-configuration", REVISION,
                         "deployment.kubernetes.io/revision-history", "deployment.kubernetes.io/desired-replicas",
                         "deployment.kubernetes.io/max-replicas"})


def _max_surge(deploy: Obj, replicas: int) -> int:
    strategy = _spec(deploy).get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0
    surge = (strategy.get("rollingUpdate") or {}).get("maxSurge", "25%")
    if isinstance(surge, str) and surge.endswith("%"):
        return -(-replicas * int(surge[:-1] or 0) // 100)  # a percentage rounds up
    return int(surge) if isinstance(surge, int | str) and str(surge).isdigit() else 0


def _rs_annotations(deploy: Obj, replicas: int, revision: int, current: Obj | None) -> Obj:
    """The annotations a Deployment's ReplicaSet carries: the Deployment's own (copied), its revision (and the
    revisions it had before, when a rollback reuses it), the desired and maximum replica counts."""
    out = {k: v for k, v in (_meta(deploy).get("annotations") or {}).items() if k not in _NOT_COPIED}
    out[REVISION] = str(revision)
    old = (_meta(current).get("annotations") or {}) if current is not None else {}
    if old.get(REVISION) and old[REVISION] != str(revision):
        history = [h for h in old.get("deployment.kubernetes.io/revision-history", "").split(",") if h]
        out["deployment.kubernetes.io/revision-history"] = ",".join([*history, old[REVISION]])
    elif old.get("deployment.kubernetes.io/revision-history"):
        out["deployment.kubernetes.io/revision-history"] = old["deployment.kubernetes.io/revision-history"]
    out["deployment.kubernetes.io/desired-replicas"] = str(replicas)
    out["deployment.kubernetes.io/max-replicas"] = str(replicas + _max_surge(deploy, replicas))
    return out


def deployment_rollout(deploy: Obj, ctx: StageContext) -> Obj:
    """Observe a new generation: make sure the ReplicaSet of the current template exists (a new
    template is a rollout: new revision), scale the others down, report progress."""
    meta = _meta(deploy)
    name, namespace = meta["name"], meta.get("namespace") or ""
    template = _spec(deploy).get("template") or {}
    pod_hash = template_hash(template)
    replicas = _replicas(deploy)
    owned = _owned_replicasets(ctx.store, deploy)
    max_revision = max((int(_meta(rs).get("annotations", {}).get(REVISION, "0") or 0) for rs in owned), default=0)
    current = next((rs for rs in owned if _meta(rs).get("labels", {}).get("pod-template-hash") == pod_hash), None)
    new_template = current is None or (
        _meta(current).get("annotations", {}).get(REVISION) != str(max_revision))
    revision = max_revision + 1 if new_template else max_revision
    for rs in owned:
        if rs is not current and _spec(rs).get("replicas", 0) != 0:
            scaled = copy.deepcopy(rs)
            scaled["spec"]["replicas"] = 0
            scaled["metadata"]["generation"] = int(_meta(rs).get("generation") or 1) + 1
            annotations = scaled["metadata"].setdefault("annotations", {})
            annotations["deployment.kubernetes.io/desired-replicas"] = str(replicas)
            annotations["deployment.kubernetes.io/max-replicas"] = str(replicas + _max_surge(deploy, replicas))
            scaled = _owned(rs, scaled)
            scaled = _with_status(scaled, {"replicas": 0, "observedGeneration": scaled["metadata"]["generation"],
                                           "terminatingReplicas": 0})
            ctx.store.update(RS_GR, scaled)
        if rs is not current:
            _sync_replicaset_pods(ctx, rs, 0)
    rs_name = f"{name}-{pod_hash}"
    labels = {**(_meta(template).get("labels") or {}), "pod-template-hash": pod_hash}
    rs_template = copy.deepcopy(template)
    rs_template.setdefault("metadata", {})["labels"] = labels
    selector = copy.deepcopy(_spec(deploy).get("selector") or {})
    selector.setdefault("matchLabels", {})["pod-template-hash"] = pod_hash
    annotations = _rs_annotations(deploy, replicas, revision, current)
    if current is None:
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": {"name": rs_name, "namespace": namespace, "uid": str(uuid.uuid4()),
                           "creationTimestamp": now(), "generation": 1, "labels": labels,
                           "annotations": annotations,
                           "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                                "uid": meta.get("uid"), "controller": True,
                                                "blockOwnerDeletion": True}]},
              "spec": {"replicas": replicas, "selector": selector, "template": rs_template}}
        rs = _owned(None, rs)
        rs["status"] = {"replicas": 0, "observedGeneration": 1, "terminatingReplicas": 0}
        current = ctx.store.create(RS_GR, rs)
        record_event(ctx.store, deploy, "ScalingReplicaSet", f"Scaled up replica set {rs_name} from 0 to {replicas}",
                     component="deployment-controller")
    elif _spec(current).get("replicas") != replicas or _meta(current).get("annotations", {}) != annotations:
        rs = copy.deepcopy(current)
        rs["metadata"]["annotations"] = annotations
        if _spec(current).get("replicas") != replicas:  # the ReplicaSet strategy counts spec changes only
            rs["spec"]["replicas"] = replicas
            rs["metadata"]["generation"] = int(rs["metadata"].get("generation", 1)) + 1
        current = ctx.store.update(RS_GR, _owned(current, rs))
    _sync_replicaset_pods(ctx, current, replicas)
    old = _status(deploy)
    available = min(int(old.get("availableReplicas", 0) or 0), replicas) if not new_template else 0
    status: Obj = {
        "observedGeneration": meta.get("generation"),
        "replicas": replicas,
        "updatedReplicas": 0 if new_template else replicas,
        "readyReplicas": available,
        "availableReplicas": available,
        "conditions": [
            _condition("Progressing", "True", "ReplicaSetUpdated",
                       f'ReplicaSet "{rs_name}" is progressing.', old.get("conditions")),
            _condition("Available", "True" if available >= replicas else "False",
                       "MinimumReplicasAvailable" if available >= replicas else "MinimumReplicasUnavailable",
                       "Deployment has minimum availability." if available >= replicas
                       else "Deployment does not have minimum availability.", old.get("conditions")),
        ],
    }
    if replicas - available:
        status["unavailableReplicas"] = replicas - available
    new = _with_status(deploy, {k: v for k, v in status.items() if v != 0 or k == "observedGeneration"}
                       | {"terminatingReplicas": 0})
    new["metadata"].setdefault("annotations", {})[REVISION] = str(revision)
    return new


def deployment_not_available(obj: Obj, ctx: StageContext) -> bool:
    meta, status = _meta(obj), _status(obj)
    if status.get("observedGeneration") != meta.get("generation"):
        return False
    if ctx.never_ready(obj):
        return False
    replicas = _replicas(obj)
    progressed = any(c.get("type") == "Progressing" and c.get("reason") == "NewReplicaSetAvailable"
                     for c in status.get("conditions") or [])
    return not (progressed and status.get("updatedReplicas", 0) == replicas
                and status.get("availableReplicas", 0) == replicas and status.get("readyReplicas", 0) == replicas
                and not status.get("unavailableReplicas"))


def deployment_available(deploy: Obj, ctx: StageContext) -> Obj:
    meta = _meta(deploy)
    replicas = _replicas(deploy)
    pod_hash = template_hash(_spec(deploy).get("template") or {})
    rs = ctx.store.get(RS_GR, meta.get("namespace") or "", f"{meta['name']}-{pod_hash}")
    if rs is not None:
        ready_rs = copy.deepcopy(rs)
        ready_rs["status"] = {"replicas": replicas, "fullyLabeledReplicas": replicas, "readyReplicas": replicas,
                              "availableReplicas": replicas, "observedGeneration": _meta(rs).get("generation"),
                              "terminatingReplicas": 0}
        if ready_rs["status"] != _status(rs):
            ctx.store.update(RS_GR, _owned(rs, ready_rs, subresource="status"))
    old = _status(deploy)
    rs_name = f"{meta['name']}-{pod_hash}"
    status: Obj = {
        "observedGeneration": meta.get("generation"),
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [
            _condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.",
                       old.get("conditions")),
            _condition("Progressing", "True", "NewReplicaSetAvailable",
                       f'ReplicaSet "{rs_name}" has successfully progressed.', old.get("conditions")),
        ],
    }
    return _with_status(deploy, {k: v for k, v in status.items() if v != 0 or k == "observedGeneration"}
                        | {"terminatingReplicas": 0})


def deployment_stalled(obj: Obj, ctx: StageContext) -> bool:
    """A Deployment held unready by a fault, observed, not yet past its progress deadline."""
    if not ctx.never_ready(obj) or _status(obj).get("observedGeneration") != _meta(obj).get("generation"):
        return False
    return not any(c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"
                   for c in _status(obj).get("conditions") or [])


def progress_deadline(obj: Obj, ctx: StageContext) -> float:
    value = _spec(obj).get("progressDeadlineSeconds", 600)
    return float(value) if isinstance(value, int | float) else 600.0


def deployment_deadline_exceeded(deploy: Obj, ctx: StageContext) -> Obj:
    """What the deployment controller reports after ``spec.progressDeadlineSeconds`` without
    progress: ``Progressing=False, reason ProgressDeadlineExceeded`` (kstatus: Failed)."""
    status = copy.deepcopy(_status(deploy))
    rs_name = f"{_meta(deploy)['name']}-{template_hash(_spec(deploy).get('template') or {})}"
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "Progressing"]
    conditions.append(_condition("Progressing", "False", "ProgressDeadlineExceeded",
                                 f'ReplicaSet "{rs_name}" has timed out progressing.'))
    status["conditions"] = conditions
    return _with_status(deploy, status)


# --- StatefulSet / DaemonSet -------------------------------------------------------------------


def sts_needs_observe(obj: Obj, ctx: StageContext) -> bool:
    status = _status(obj)
    return (status.get("observedGeneration") != _meta(obj).get("generation")
            or status.get("updateRevision") != f"{_meta(obj)['name']}-{template_hash(_spec(obj).get('template'))}")


def _sync_ordinal_pods(ctx: StageContext, sts: Obj, replicas: int, revision: str) -> None:
    """StatefulSet Pods ``<name>-0 … <name>-(n-1)``; a Pod of an older revision is replaced."""
    namespace = _meta(sts).get("namespace") or ""
    name = _meta(sts)["name"]
    template = _spec(sts).get("template") or {}
    pods = {_meta(p)["name"]: p for p in _owned_by(ctx.store, PODS_GR, namespace, _meta(sts).get("uid"))}
    wanted = {f"{name}-{i}" for i in range(replicas)}
    _delete_all(ctx.store, PODS_GR, [p for n, p in pods.items() if n not in wanted or _meta(p).get(
        "labels", {}).get("controller-revision-hash") != revision], sts)
    for pod_name in sorted(wanted):
        # volumeClaimTemplates: one PVC per template and Pod, kept when the Pod goes (as the real controller)
        for claim in _spec(sts).get("volumeClaimTemplates") or []:
            pvc_name = f"{_meta(claim).get('name')}-{pod_name}"
            if isinstance(claim, dict) and ctx.store.get(PVC_GR, namespace, pvc_name) is None:
                labels = {**(_meta(template).get("labels") or {}), **(_meta(claim).get("labels") or {})}
                with contextlib.suppress(ApiError):
                    ctx.store.create(PVC_GR, {
                        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "metadata": {"name": pvc_name, "namespace": namespace, "uid": str(uuid.uuid4()),
                                     "creationTimestamp": now(), "labels": labels},
                        "spec": {"volumeMode": "Filesystem", "storageClassName": "standard",
                                 **copy.deepcopy(claim.get("spec") or {})}})
        if ctx.store.get(PODS_GR, namespace, pod_name) is None:
            pod = _new_pod(sts, "StatefulSet", template, pod_name, {
                "apps.kubernetes.io/pod-index": pod_name.rsplit("-", 1)[-1],
                "controller-revision-hash": revision, "statefulset.kubernetes.io/pod-name": pod_name})
            pod["spec"].setdefault("hostname", pod_name)  # the stable network identity: <pod>.<serviceName>
            if _spec(sts).get("serviceName"):
                pod["spec"].setdefault("subdomain", _spec(sts)["serviceName"])
            _create_pod(ctx.store, sts, pod)


def sts_observe(obj: Obj, ctx: StageContext) -> Obj:
    old = _status(obj)
    revision = f"{_meta(obj)['name']}-{template_hash(_spec(obj).get('template'))}"
    replicas = _replicas(obj)
    rolled = old.get("currentRevision") == revision
    ready = min(int(old.get("readyReplicas", 0) or 0), replicas) if rolled else 0
    _sync_ordinal_pods(ctx, obj, replicas, revision)
    status = {"observedGeneration": _meta(obj).get("generation"), "replicas": replicas,
              "currentRevision": old.get("currentRevision", revision) if ready else old.get("currentRevision", ""),
              "updateRevision": revision, "readyReplicas": ready, "availableReplicas": ready,
              "currentReplicas": ready, "updatedReplicas": ready, "collisionCount": 0}
    return _with_status(obj, {k: v for k, v in status.items()
                              if v not in (0, "") or k in ("observedGeneration", "collisionCount")})


def sts_not_ready(obj: Obj, ctx: StageContext) -> bool:
    status = _status(obj)
    if sts_needs_observe(obj, ctx) or ctx.never_ready(obj):
        return False
    replicas = _replicas(obj)
    return not (status.get("readyReplicas", 0) == replicas and status.get("currentRevision")
                == status.get("updateRevision") and status.get("updatedReplicas", 0) == replicas)


def sts_ready(obj: Obj, ctx: StageContext) -> Obj:
    replicas = _replicas(obj)
    status = {**_status(obj), "replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
              "currentReplicas": replicas, "updatedReplicas": replicas,
              "currentRevision": _status(obj).get("updateRevision")}
    return _with_status(obj, {k: v for k, v in status.items()
                              if v != 0 or k in ("observedGeneration", "collisionCount")})


def ds_not_ready(obj: Obj, ctx: StageContext) -> bool:
    meta, status = _meta(obj), _status(obj)
    if ctx.never_ready(obj):
        return False
    return status.get("observedGeneration") != meta.get("generation") or status.get("numberReady") != 1


def ds_ready(obj: Obj, ctx: StageContext) -> Obj:
    # One simulated node: every DaemonSet wants exactly one pod.
    revision = template_hash(_spec(obj).get("template"))
    pods = _owned_by(ctx.store, PODS_GR, _meta(obj).get("namespace") or "", _meta(obj).get("uid"))
    stale = [p for p in pods if _meta(p).get("labels", {}).get("controller-revision-hash") != revision]
    _delete_all(ctx.store, PODS_GR, stale)
    if len(stale) == len(pods):
        name = f"{_meta(obj)['name']}-{''.join(random.choices(_SAFE, k=5))}"
        _create_pod(ctx.store, obj, _new_pod(obj, "DaemonSet", _spec(obj).get("template") or {}, name,
                                             {"controller-revision-hash": revision}))
    return _with_status(obj, {"observedGeneration": _meta(obj).get("generation"), "desiredNumberScheduled": 1,
                              "currentNumberScheduled": 1, "updatedNumberScheduled": 1, "numberReady": 1,
                              "numberAvailable": 1, "numberMisscheduled": 0})


# --- Job -------------------------------------------------------------------------------------


def _finished(obj: Obj) -> bool:
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in _status(obj).get("conditions") or [])


def job_not_started(obj: Obj, ctx: StageContext) -> bool:
    return not _spec(obj).get("suspend") and not _status(obj).get("startTime") and not _finished(obj)


def _job_pods(store: Store, job: Obj) -> list[Obj]:
    uid = _meta(job).get("uid")
    items, _ = store.list(PODS_GR, _meta(job).get("namespace") or "")
    return [p for p in items if any(r.get("uid") == uid for r in _meta(p).get("ownerReferences") or [])]


def job_start(obj: Obj, ctx: StageContext) -> Obj:
    """Start a Job: one Pod (owned by the Job, labelled like the job controller does) runs it."""
    meta = _meta(obj)
    template = copy.deepcopy(_spec(obj).get("template") or {})
    labels = {**(_meta(template).get("labels") or {}), "job-name": meta["name"],
              "batch.kubernetes.io/job-name": meta["name"], "controller-uid": meta.get("uid", ""),
              "batch.kubernetes.io/controller-uid": meta.get("uid", "")}
    pod_name = f"{meta['name']}-{''.join(random.choices(_SAFE, k=5))}"
    stamp = now()
    running = {"phase": "Running", "startTime": stamp, "hostIP": "10.0.0.1", "podIP": "10.244.0.10",
               "podIPs": [{"ip": "10.244.0.10"}], "hostIPs": [{"ip": "10.0.0.1"}],
               "qosClass": qos_class(template.get("spec") or {}),
               "conditions": _pod_conditions(True, stamp),
               "containerStatuses": [{"name": c.get("name"), "image": c.get("image"), "imageID": "",
                                      "lastState": {}, "ready": True, "started": True, "restartCount": 0,
                                      "state": {"running": {"startedAt": stamp}}}
                                     for c in (template.get("spec") or {}).get("containers") or []]}
    pod = _new_pod(obj, "Job", template, pod_name, labels, status=running)
    pod["metadata"]["ownerReferences"][0]["apiVersion"] = "batch/v1"
    _create_pod(ctx.store, obj, pod)
    return _with_status(obj, {"startTime": stamp, "active": 1, "ready": 0, "terminating": 0,
                              "uncountedTerminatedPods": {}})


def _pod_conditions(ready: bool, stamp: str, reason: str = "") -> list[Obj]:
    """A pod's conditions as the kubelet reports them (Ready/ContainersReady with a reason once it ended)."""
    out: list[Obj] = []
    for type_ in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
        cond: Obj = {"type": type_, "status": "True" if ready or type_ in ("PodScheduled", "Initialized") else "False",
                     "lastProbeTime": None, "lastTransitionTime": stamp}
        if reason and type_ in ("ContainersReady", "Ready"):
            cond["reason"] = reason
        out.append(cond)
    return out


def _finish_pods(ctx: StageContext, job: Obj, failed: bool) -> None:
    stamp = now()
    for pod in _job_pods(ctx.store, job):
        done = copy.deepcopy(pod)
        done["status"]["phase"] = "Failed" if failed else "Succeeded"
        done["status"]["conditions"] = _pod_conditions(False, stamp, "PodFailed" if failed else "PodCompleted")
        for container in done["status"].get("containerStatuses") or []:
            terminated = {"exitCode": 1 if failed else 0, "reason": "Error" if failed else "Completed",
                          "startedAt": pod["status"].get("startTime"), "finishedAt": stamp}
            if failed:
                terminated["message"] = "failed on purpose (kubesim.io/fail)"
            container.update(ready=False, started=False, state={"terminated": terminated})
        ctx.store.update(PODS_GR, _owned(pod, done, KUBELET, "status"))


def job_running(obj: Obj, ctx: StageContext) -> bool:
    return bool(_status(obj).get("startTime")) and not _finished(obj)


def job_finish(obj: Obj, ctx: StageContext) -> Obj:
    status = {k: v for k, v in _status(obj).items() if k != "active"} | {"ready": 0}
    stamp = now()
    failed = ctx.job_fails(obj)
    _finish_pods(ctx, obj, failed)
    if failed:
        record_event(ctx.store, obj, "BackoffLimitExceeded", "Job has reached the specified backoff limit",
                     warning=True, component="job-controller")
    else:
        record_event(ctx.store, obj, "Completed", "Job completed", component="job-controller")
    if failed:
        status["failed"] = 1
        status["conditions"] = [
            {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded",
             "message": "Job has reached the specified backoff limit", "lastProbeTime": stamp,
             "lastTransitionTime": stamp},
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
             "message": "Job has reached the specified backoff limit", "lastProbeTime": stamp,
             "lastTransitionTime": stamp},
        ]
    else:
        status["succeeded"] = int(_spec(obj).get("completions") or 1)
        status["completionTime"] = stamp
        status["conditions"] = [
            {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
             "message": "Reached expected number of succeeded pods", "lastProbeTime": stamp,
             "lastTransitionTime": stamp},
            {"type": "Complete", "status": "True", "reason": "CompletionsReached",
             "message": "Reached expected number of succeeded pods", "lastProbeTime": stamp,
             "lastTransitionTime": stamp},
        ]
    return _with_status(obj, status)


# --- small ones ----------------------------------------------------------------------------------


def pvc_pending(obj: Obj, ctx: StageContext) -> bool:
    return _status(obj).get("phase") != "Bound"


def pvc_bind(obj: Obj, ctx: StageContext) -> Obj:
    spec = _spec(obj)
    capacity = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
    return _with_status(obj, {"phase": "Bound", "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                              "capacity": {"storage": capacity}})


def pod_not_running(obj: Obj, ctx: StageContext) -> bool:
    return _status(obj).get("phase") not in ("Running", "Succeeded", "Failed")


def pod_run(obj: Obj, ctx: StageContext) -> Obj:
    """A bare Pod: a long-running one (restartPolicy Always) is Running and Ready; a run-to-completion
    one (Never/OnFailure, e.g. a ``helm test`` Pod) ends Succeeded, or Failed when told to fail."""
    stamp = now()
    containers = _spec(obj).get("containers") or []
    if _spec(obj).get("restartPolicy", "Always") == "Always":
        phase, ready = "Running", not ctx.never_ready(obj)
        state: Obj = {"running": {"startedAt": stamp}}
    else:
        failed = ctx.job_fails(obj)
        phase, ready = ("Failed" if failed else "Succeeded"), False
        state = {"terminated": {"exitCode": 1 if failed else 0, "reason": "Error" if failed else "Completed",
                                "startedAt": stamp, "finishedAt": stamp}}
    ended = "" if phase == "Running" else ("PodFailed" if phase == "Failed" else "PodCompleted")
    return _with_status(obj, {
        "phase": phase, "podIP": "10.244.0.10", "podIPs": [{"ip": "10.244.0.10"}], "hostIP": "10.0.0.1",
        "hostIPs": [{"ip": "10.0.0.1"}], "startTime": stamp, "qosClass": qos_class(_spec(obj)),
        "conditions": _pod_conditions(ready, stamp, ended),
        "containerStatuses": [{"name": c.get("name"), "image": c.get("image"), "imageID": "", "lastState": {},
                               "ready": ready, "started": ready, "restartCount": 0, "state": state}
                              for c in containers],
    }, KUBELET)


def lb_service_pending(obj: Obj, ctx: StageContext) -> bool:
    return _spec(obj).get("type") == "LoadBalancer" and not (_status(obj).get("loadBalancer") or {}).get("ingress")


def lb_service_assign(obj: Obj, ctx: StageContext) -> Obj:
    return _with_status(obj, {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}})
