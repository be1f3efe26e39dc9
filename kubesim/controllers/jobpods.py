"""Pods for Jobs, and their logs: what a client reading a Job's outcome looks at after its conditions.

A started Job gets one Pod (`<job>-<5 chars>`), labelled like the real Job controller does
(`job-name`, `batch.kubernetes.io/job-name`, `controller-uid`) and owned by the Job, so deleting the
Job (background propagation) deletes its Pod. When the Job finishes, its Pod terminates with it:
phase Succeeded/Failed, the container `terminated` with exit code 0/1, and a log stored in the
annotation `kubesim.io/log`, which `GET …/pods/<pod>/log` serves (`tailLines` honoured).

The log is a trace of the script the Pod would have run (each command line of every ConfigMap
mounted into it, prefixed `+ ` like `bash -x`), ending in the exit status, so a client recording a
failed Job's log tail has something real to record.
"""

from __future__ import annotations

import copy
import hashlib
import uuid
from typing import Any

from kubesim.controllers.engine import StageContext
from kubesim.controllers.workloads import _SAFE, now
from kubesim.store import Store

Obj = dict[str, Any]
POD_GR = ("", "pods")
CONFIGMAP_GR = ("", "configmaps")
LOG_ANNOTATION = "kubesim.io/log"
TERMINAL = ("Succeeded", "Failed")


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _finished(job: Obj) -> tuple[bool, bool]:
    """(finished, failed) from the Job's conditions."""
    done = failed = False
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            done = True
            failed = failed or cond.get("type") == "Failed"
    return done, failed


def _pod_of(store: Store, job: Obj) -> Obj | None:
    meta = _meta(job)
    uid = meta.get("uid")
    pods, _ = store.list(
        POD_GR,
        meta.get("namespace") or "",
        lambda p: any(ref.get("uid") == uid for ref in _meta(p).get("ownerReferences") or []),
    )
    return pods[0] if pods else None


def job_pod_out_of_date(job: Obj, ctx: StageContext) -> bool:
    if not (job.get("status") or {}).get("startTime"):
        return False
    pod = _pod_of(ctx.store, job)
    if pod is None:
        return True
    return _finished(job)[0] and (pod.get("status") or {}).get("phase") not in TERMINAL


def job_pod_sync(job: Obj, ctx: StageContext) -> None:
    """Create the Job's Pod, and terminate it once the Job finished. Writes Pods only, never the Job."""
    pod = _pod_of(ctx.store, job)
    if pod is None:
        pod = ctx.store.create(POD_GR, _new_pod(job))
    done, failed = _finished(job)
    if done and (pod.get("status") or {}).get("phase") not in TERMINAL:
        ctx.store.update(POD_GR, _terminated(ctx.store, pod, job, failed))


def _suffix(uid: str) -> str:
    digest = int.from_bytes(hashlib.sha256(uid.encode()).digest()[:8], "big")
    return "".join(_SAFE[(digest >> (5 * i)) % len(_SAFE)] for i in range(5))


def _new_pod(job: Obj) -> Obj:
    meta = _meta(job)
    name, uid = str(meta.get("name")), str(meta.get("uid"))
    template = copy.deepcopy((job.get("spec") or {}).get("template") or {})
    labels = {
        **(_meta(template).get("labels") or {}),
        "job-name": name,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": uid,
        "batch.kubernetes.io/controller-uid": uid,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{name}-{_suffix(uid)}"[:253],
            "namespace": meta.get("namespace"),
            "uid": str(uuid.uuid4()),
            "creationTimestamp": now(),
            "labels": labels,
            "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid, "controller": True,
                 "blockOwnerDeletion": True}
            ],
        },
        "spec": template.get("spec") or {},
        "status": {"phase": "Pending"},
    }


def _terminated(store: Store, pod: Obj, job: Obj, failed: bool) -> Obj:
    stamp = now()
    out = copy.deepcopy(pod)
    exit_code = 1 if failed else 0
    containers = (out.get("spec") or {}).get("containers") or []
    out.setdefault("metadata", {}).setdefault("annotations", {})[LOG_ANNOTATION] = _log(store, out, job, exit_code)
    out["status"] = {
        **(out.get("status") or {}),
        "phase": "Failed" if failed else "Succeeded",
        "containerStatuses": [
            {"name": c.get("name"), "image": c.get("image"), "imageID": "", "ready": False, "started": False,
             "restartCount": 0,
             "state": {"terminated": {"exitCode": exit_code, "reason": "Error" if failed else "Completed",
                                      "startedAt": (out.get("status") or {}).get("startTime") or stamp,
                                      "finishedAt": stamp}}}
            for c in containers
        ],
    }
    return out


def _log(store: Store, pod: Obj, job: Obj, exit_code: int) -> str:
    meta = _meta(pod)
    spec = pod.get("spec") or {}
    images = ", ".join(str(c.get("image")) for c in spec.get("containers") or [])
    lines = [f"kubesim: Job {meta.get('namespace')}/{_meta(job).get('name')} ran in pod {meta.get('name')} ({images})"]
    for volume in spec.get("volumes") or []:
        ref = (volume.get("configMap") or {}).get("name")
        cm = store.get(CONFIGMAP_GR, meta.get("namespace") or "", ref) if ref else None
        for _, text in sorted(((cm or {}).get("data") or {}).items()):
            commands = [ln.strip() for ln in str(text).splitlines()]
            lines += [f"+ {ln}" for ln in commands if ln and not ln.startswith("#")]
    if exit_code:
        lines.append(f"kubesim: exit code {exit_code} (the Job failed: fault injection)")
    else:
        lines.append("kubesim: exit code 0")
    return "\n".join(lines) + "\n"


def pod_log(pod: Obj, tail_lines: str | None) -> str:
    """The log `GET …/pods/<pod>/log` answers, its last `tailLines` lines if given."""
    text = str((_meta(pod).get("annotations") or {}).get(LOG_ANNOTATION) or "")
    if tail_lines is not None and tail_lines.isdigit():
        kept = text.splitlines()[-int(tail_lines):] if int(tail_lines) else []
        return "".join(f"{ln}\n" for ln in kept)
    return text
