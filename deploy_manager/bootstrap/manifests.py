"""The objects one bootstrap step runs as: pure functions from a step to Kubernetes manifests (no I/O).

- Job `<release>-<step>-<digest[:10]>` (≤63 characters, a DNS label): Jobs are immutable, so a changed
  step is a new Job, and the completed Job with a step's digest is the cluster's record that it ran.
  An `always` step adds `-<sequence>` so every run gets a fresh Job.
- ConfigMap of the same name holding the rendered script (mounted at /bootstrap/), owned by the Job,
  so deleting a Job from the history deletes its script too.
- Secret `<release>-bootstrap-etc`: the chart's config files (rendered by the engine with `helm template`,
  because on a fresh install `before` steps run before the chart's own `<release>-etc` exists),
  mounted at /etc/<component>/.
- Pods pass the Kubernetes *restricted* Pod Security profile and carry resources (`JobPodPolicy`: the
  manager's defaults from `DM_JOB_*`, then a component's `bootstrap.podSecurityContext`,
  `bootstrap.securityContext`, `bootstrap.resources` values key by key), so a restricted or quota-limited
  namespace admits them instead of the step failing at its deadline with no log. The root filesystem stays
  writable by default (OpenStack tools write below /var and /tmp); with `readOnlyRootFilesystem: true` the
  pod gets an emptyDir at /tmp.
- Env `SECRET_<NAME>` from every Secret reference in `values.secrets` and `values.bootstrap.secrets`
  (the chart convention, `common.secretEnvName`): scripts never contain secrets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from deploy_manager.desired.images import pull_policy
from deploy_manager.models.desired import BootstrapStep, DesiredComponent
from deploy_manager.models.labels import LABEL_PREFIX

Obj = dict[str, Any]
Readable = Mapping[str, Any]  # a payload as read (a dict or a kube.types TypedDict)

LABEL_CLUSTER = LABEL_PREFIX + "cluster"
LABEL_COMPONENT = LABEL_PREFIX + "component"
LABEL_STEP = LABEL_PREFIX + "step"
LABEL_DIGEST = LABEL_PREFIX + "step-digest"
LABEL_SEQUENCE = LABEL_PREFIX + "sequence"
ANNOTATION_DIGEST = LABEL_PREFIX + "step-digest-full"
ANNOTATION_COMMIT = LABEL_PREFIX + "commit"
ANNOTATION_RUN = LABEL_PREFIX + "run-id"
MANAGED_BY = {"app.kubernetes.io/managed-by": "deploy-manager"}

NAME_MAX = 63
DIGEST_IN_NAME = 10
DIGEST_LABEL_LEN = 40  # label values are at most 63 characters; 160 bits tell steps apart
SCRIPT_DIR = "/bootstrap"
SCRIPT_KEY = "script.sh"


# The restricted profile (https://kubernetes.io/docs/concepts/security/pod-security-standards/): seccomp
# RuntimeDefault, non-root, no privilege escalation, every capability dropped. A numeric non-root user, because
# the kubelet cannot verify `runAsNonRoot` against an image whose USER is a name (as OpenStack images' are).
DEFAULT_POD_SECURITY_CONTEXT: Obj = {
    "runAsNonRoot": True,
    "runAsUser": 65534,
    "runAsGroup": 65534,
    "seccompProfile": {"type": "RuntimeDefault"},
}
DEFAULT_SECURITY_CONTEXT: Obj = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}
DEFAULT_RESOURCES: Obj = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}


@dataclass(frozen=True)
class JobPodPolicy:
    """securityContext (pod and container) and resources of every bootstrap Job's pod."""

    pod_security_context: Obj = field(default_factory=lambda: dict(DEFAULT_POD_SECURITY_CONTEXT))
    security_context: Obj = field(default_factory=lambda: dict(DEFAULT_SECURITY_CONTEXT))
    resources: Obj = field(default_factory=lambda: dict(DEFAULT_RESOURCES))

    def for_component(self, values: dict[str, Any]) -> JobPodPolicy:
        """A component's `bootstrap.{podSecurityContext,securityContext,resources}` override keys one by one."""
        bootstrap = values.get("bootstrap") if isinstance(values.get("bootstrap"), dict) else {}

        def merged(base: Obj, key: str) -> Obj:
            extra = (bootstrap or {}).get(key)
            return {**base, **extra} if isinstance(extra, dict) else dict(base)

        return JobPodPolicy(
            pod_security_context=merged(self.pod_security_context, "podSecurityContext"),
            security_context=merged(self.security_context, "securityContext"),
            resources=merged(self.resources, "resources"),
        )


def digest_label(digest: str) -> str:
    return digest[:DIGEST_LABEL_LEN]


def job_name(release: str, step: str, digest: str, sequence: int | None = None) -> str:
    """`<release>-<step>-<digest[:10]>[-<sequence>]`, the prefix shortened to keep it ≤63 characters."""
    tail = f"-{digest[:DIGEST_IN_NAME]}" + (f"-{sequence}" if sequence is not None else "")
    prefix = f"{release}-{step}"[: NAME_MAX - len(tail)].rstrip("-")
    return prefix + tail


def etc_secret_name(release: str) -> str:
    return f"{release}-bootstrap-etc"[:NAME_MAX].rstrip("-")


def step_labels(cluster: str, component: str, step: BootstrapStep) -> dict[str, str]:
    return {
        **MANAGED_BY,
        LABEL_CLUSTER: cluster,
        LABEL_COMPONENT: component,
        LABEL_STEP: step.name,
        LABEL_DIGEST: digest_label(step.digest),
    }


def component_selector(cluster: str, component: str) -> str:
    return f"{LABEL_CLUSTER}={cluster},{LABEL_COMPONENT}={component}"


def secret_env_name(name: str) -> str:
    """The env var a Secret reference becomes; must match the charts' `common.secretEnvName`."""
    return "SECRET_" + re.sub(r"-", "_", name.upper())


def secret_env(values: dict[str, Any]) -> list[Obj]:
    """`SECRET_<NAME>` env vars (secretKeyRef) from `secrets` and `bootstrap.secrets`, the latter winning."""
    refs: dict[str, Obj] = {}
    bootstrap = values.get("bootstrap") if isinstance(values.get("bootstrap"), dict) else {}
    for source in (values.get("secrets"), (bootstrap or {}).get("secrets")):
        if not isinstance(source, dict):
            continue
        for name, ref in source.items():
            if isinstance(ref, dict) and ref.get("name") and ref.get("key"):
                refs[str(name)] = {"name": str(ref["name"]), "key": str(ref["key"])}
    return [{"name": secret_env_name(name), "valueFrom": {"secretKeyRef": refs[name]}} for name in sorted(refs)]


def job_manifest(
    *,
    name: str,
    cluster: str,
    comp: DesiredComponent,
    step: BootstrapStep,
    image: str,
    etc_secret: str | None,
    service_account: str | None,
    commit: str,
    run_id: int | None,
    sequence: int | None = None,
    policy: JobPodPolicy | None = None,
) -> Obj:
    pod_policy = (policy or JobPodPolicy()).for_component(comp.values)
    labels = step_labels(cluster, comp.name, step)
    if sequence is not None:
        labels[LABEL_SEQUENCE] = str(sequence)
    annotations = {ANNOTATION_DIGEST: step.digest, ANNOTATION_COMMIT: commit}
    if run_id is not None:
        annotations[ANNOTATION_RUN] = str(run_id)
    mounts: list[Obj] = [{"name": "script", "mountPath": SCRIPT_DIR, "readOnly": True}]
    volumes: list[Obj] = [{"name": "script", "configMap": {"name": name, "defaultMode": 0o555}}]
    if pod_policy.security_context.get("readOnlyRootFilesystem"):
        # Scripts and tools still need somewhere to write temporary files.
        mounts.append({"name": "tmp", "mountPath": "/tmp"})
        volumes.append({"name": "tmp", "emptyDir": {}})
    if etc_secret is not None:
        mounts.append({"name": "etc", "mountPath": f"/etc/{comp.name}/", "readOnly": True})
        volumes.append({"name": "etc", "secret": {"secretName": etc_secret, "defaultMode": 0o444}})
    images = comp.values.get("images") if isinstance(comp.values.get("images"), dict) else {}
    container: Obj = {
        "name": step.name,
        "image": image,
        "imagePullPolicy": pull_policy(image, str((images or {}).get("pullPolicy") or "")),
        "command": ["/bin/bash", f"{SCRIPT_DIR}/{SCRIPT_KEY}"],
        "env": secret_env(comp.values),
        "volumeMounts": mounts,
        "securityContext": pod_policy.security_context,
        "resources": pod_policy.resources,
    }
    pod_spec: Obj = {
        "restartPolicy": "Never",
        "securityContext": pod_policy.pod_security_context,
        "containers": [container],
        "volumes": volumes,
    }
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    else:  # no API access unless the chart grants it through its bootstrap ServiceAccount
        pod_spec["automountServiceAccountToken"] = False
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": comp.namespace, "labels": labels, "annotations": annotations},
        "spec": {
            # A failed migration is not retried blindly: the run fails with its log, a re-apply retries.
            "backoffLimit": 0,
            "activeDeadlineSeconds": step.timeout,
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
        },
    }


def script_configmap(name: str, job: Obj, script: str) -> Obj:
    """The script ConfigMap, owned by its Job (created right after it; the pod waits for the volume)."""
    meta = job["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": dict(meta["labels"]),
            "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"], "uid": meta.get("uid", "")}
            ],
        },
        "data": {SCRIPT_KEY: script},
    }


def etc_secret(name: str, namespace: str, cluster: str, component: str, data: dict[str, str]) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**MANAGED_BY, LABEL_CLUSTER: cluster, LABEL_COMPONENT: component},
        },
        "data": dict(data),
    }


# -- reading Job status ---------------------------------------------------------------------------------
def _condition(job: Readable, kind: str) -> bool:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return True
    return False


def job_complete(job: Readable) -> bool:
    return _condition(job, "Complete")


def job_failed(job: Readable) -> bool:
    return _condition(job, "Failed")


def job_finished(job: Readable) -> bool:
    return job_complete(job) or job_failed(job)


def job_failure_message(job: Readable) -> str:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Failed" and cond.get("status") == "True":
            return f"{cond.get('reason') or 'Failed'}: {cond.get('message') or ''}".rstrip(": ")
    return "failed"


def creation_key(obj: Readable) -> tuple[str, int, str]:
    """Oldest first: creationTimestamp (second resolution), then resourceVersion, then name."""
    meta = obj.get("metadata") or {}
    rv = str(meta.get("resourceVersion") or "0")
    return (str(meta.get("creationTimestamp") or ""), int(rv) if rv.isdigit() else 0, str(meta.get("name") or ""))


# -- workflow checks (issue 14) ---------------------------------------------------------------------------
LABEL_SMOKE = LABEL_PREFIX + "smoke-check"
SMOKE_PREFIX = "smoke-"
SMOKE_SUFFIX_LEN = 6


def smoke_job_name(check: str, suffix: str) -> str:
    """`smoke-<check>-<suffix>`, the check's part shortened to keep it ≤63 characters."""
    tail = f"-{suffix}"
    return f"{SMOKE_PREFIX}{check}"[: NAME_MAX - len(tail)].rstrip("-") + tail


def smoke_labels(cluster: str, component: str, check: str) -> dict[str, str]:
    # No step label: a check is never mistaken for a bootstrap step of its component (planner.bootstrap).
    return {**MANAGED_BY, LABEL_CLUSTER: cluster, LABEL_COMPONENT: component, LABEL_SMOKE: check}


def smoke_selector(cluster: str, component: str, check: str) -> str:
    return f"{LABEL_CLUSTER}={cluster},{LABEL_COMPONENT}={component},{LABEL_SMOKE}={check}"


def smoke_job_manifest(
    *,
    name: str,
    cluster: str,
    comp: DesiredComponent,
    check: str,
    image: str,
    timeout: int,
    etc_secret: str | None,
    commit: str,
    run_id: int | None,
    policy: JobPodPolicy | None = None,
) -> Obj:
    """A check's Job: the bootstrap Job's pod (restricted profile, no API token, `SECRET_*` env, the config
    mounted at /etc/<component>/), labelled as a check; the chart's own `<release>-etc` is the config."""
    step = BootstrapStep(name=check, script="", image=image, timeout=timeout)
    body = job_manifest(
        name=name,
        cluster=cluster,
        comp=comp,
        step=step,
        image=image,
        etc_secret=etc_secret,
        service_account=None,
        commit=commit,
        run_id=run_id,
        policy=policy,
    )
    labels = smoke_labels(cluster, comp.name, check)
    body["metadata"]["labels"] = labels
    body["metadata"]["annotations"].pop(ANNOTATION_DIGEST, None)
    body["spec"]["template"]["metadata"]["labels"] = dict(labels)
    return body
