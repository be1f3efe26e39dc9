"""Differential conformance: the same real helm and kubectl operations on kubesim and on the real control
plane (:mod:`kubecluster`), every resulting object compared field by field.

``run_scenario(cli, capture)`` drives one cluster through the conformance suites' operations (a release with
one of each kind helm installs: install, upgrade, rollback, a client-side upgrade after server-side ones,
uninstall; a chart with a pre-install hook Job; kubectl client-side and server-side
apply, merge/JSON/strategic patches, scale, rollout, delete; a Job that completes and one that fails; a
Lease created then replaced) and takes a snapshot (``kubectl get … -o json --show-managed-fields``) at each
checkpoint. ``normalize`` removes what must differ between two clusters (uids, resourceVersions, timestamps,
generated name suffixes and hashes, IPs, node names) and keeps what clients read: status (conditions, counts),
the API server's defaults, labels/annotations/finalizers/ownerReferences, managedFields owners (manager,
operation, subresource) and the Events (involved object, reason, type). ``compare`` lists every difference
as (checkpoint, kind/name, path, kubesim value, real value); ``ACCEPTED`` names the differences that are known
and why they do not matter (each one is also listed in :mod:`kubesim`'s docstring).

``python -m kubesim.differential`` (``make conformance-diff``) starts both backends, runs the scenario on
both at once and prints the report; it exits 1 on a difference that ``ACCEPTED`` does not name.
"""

from __future__ import annotations

import base64
import fnmatch
import gzip
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubesim.testing import KubeCLI

Obj = dict[str, Any]
ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "tests" / "kubesim" / "charts" / "diff"
HOOKS_CHART = ROOT / "tests" / "kubesim" / "charts" / "hooks"
HELM_NS, KUBECTL_NS = "diff-helm", "diff-kubectl"
# What a snapshot reads in each namespace (the kinds helm and kubectl wrote, and what controllers made of them).
KINDS = ("deployments.apps", "replicasets.apps", "statefulsets.apps", "controllerrevisions.apps", "pods",
         "services", "configmaps", "secrets", "serviceaccounts", "roles.rbac.authorization.k8s.io",
         "rolebindings.rbac.authorization.k8s.io", "jobs.batch", "leases.coordination.k8s.io",
         "persistentvolumeclaims", "events")
ABSENT = "<absent>"
KWOK_AS = {"kwok": "kubelet"}

# ---------------------------------------------------------------------------------------------------------
# The scenario
# ---------------------------------------------------------------------------------------------------------
DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {tier: front}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:TAG
          env:
            - {name: A, value: "1"}
        - name: sidecar
          image: busybox:1
"""
STATEFULSET = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
        - {name: db, image: "postgres:16"}
"""
CONFIGMAP = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels: {tier: back}
data:
  mode: MODE
"""
JOB = """
apiVersion: batch/v1
kind: Job
metadata:
  name: NAME
  ANNOTATIONS
spec:
  backoffLimit: 0
  template:
    metadata:
      ANNOTATIONS
    spec:
      restartPolicy: Never
      containers:
        - {name: work, image: "busybox:1", command: [/bin/sh, -c, "exit 0"]}
"""
LEASE = """
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: deploy-manager}
spec:
  holderIdentity: HOLDER
  leaseDurationSeconds: 15
  leaseTransitions: TRANSITIONS
  acquireTime: "2026-01-01T00:00:00.000000Z"
  renewTime: "2026-01-01T00:00:05.000000Z"
"""


def _job(name: str, fail: bool) -> str:
    annotations = 'annotations: {kubesim.io/fail: "true"}' if fail else "labels: {purpose: differential}"
    return JOB.replace("NAME", name).replace("ANNOTATIONS", annotations)


Capture = Callable[[str], None]


def run_scenario(cli: KubeCLI, capture: Capture) -> None:
    """The operations, in order; ``capture(checkpoint)`` after each group once the cluster has settled."""
    chart, ns = str(CHART), HELM_NS
    cli.helm("install", "rel", chart, "-n", ns, "--create-namespace", "--wait", "--wait-for-jobs", "--timeout", "60s")
    capture("helm-install")
    cli.helm("upgrade", "rel", chart, "-n", ns, "--wait", "--wait-for-jobs", "--timeout", "60s",
             "--set", "message=second,image=registry.example/app:2.0,replicas=2",
             "--labels", "deploy-manager.io/digest=abc123")
    capture("helm-upgrade")
    cli.helm("rollback", "rel", "1", "-n", ns, "--wait", "--timeout", "60s")
    capture("helm-rollback")
    # client-side apply (helm's three-way strategic merge) after server-side: the field-ownership hand-over;
    # and a chart whose pre-install hook is a Job
    cli.helm("upgrade", "rel", chart, "-n", ns, "--server-side=false", "--wait", "--timeout", "60s",
             "--set", "message=client-side")
    cli.helm("install", "hk", str(HOOKS_CHART), "-n", ns, "--wait", "--timeout", "60s")
    capture("helm-client-side")

    ns = KUBECTL_NS
    cli.kubectl("create", "namespace", ns)

    def apply(manifest: str, *extra: str) -> None:
        cli.kubectl("apply", "-n", ns, "-f", "-", *extra, input=manifest)

    def rollout(what: str) -> None:
        cli.kubectl("rollout", "status", what, "-n", ns, "--timeout=60s")

    apply(DEPLOYMENT.replace("TAG", "1"))
    rollout("deployment/web")
    apply(DEPLOYMENT.replace("TAG", "2"))
    rollout("deployment/web")
    apply(STATEFULSET)
    rollout("statefulset/db")
    apply(CONFIGMAP.replace("MODE", "a"), "--server-side")
    apply(CONFIGMAP.replace("MODE", "b"), "--server-side", "--field-manager", "other", "--force-conflicts")
    cli.kubectl("patch", "configmap", "settings", "-n", ns, "--type=merge", "-p", '{"data":{"extra":"x"}}')
    cli.kubectl("patch", "deployment", "web", "-n", ns, "-p",
                '{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:3"}]}}}}')
    cli.kubectl("patch", "deployment", "web", "-n", ns, "--type=json", "-p",
                '[{"op":"replace","path":"/spec/replicas","value":4}]')
    cli.kubectl("scale", "deployment", "web", "-n", ns, "--replicas=3")
    cli.kubectl("label", "deployment", "web", "-n", ns, "color=blue")
    cli.kubectl("annotate", "deployment", "web", "-n", ns, "note=hi")
    rollout("deployment/web")
    apply(_job("ok", fail=False))
    apply(_job("bad", fail=True))
    cli.kubectl("wait", "-n", ns, "--for=condition=Complete", "job/ok", "--timeout=60s")
    cli.kubectl("wait", "-n", ns, "--for=condition=Failed", "job/bad", "--timeout=60s")
    cli.kubectl("create", "-n", ns, "-f", "-", input=LEASE.replace("HOLDER", "a").replace("TRANSITIONS", "0"))
    cli.kubectl("replace", "-n", ns, "-f", "-", input=LEASE.replace("HOLDER", "b").replace("TRANSITIONS", "1"))
    capture("kubectl")

    cli.kubectl("delete", "deployment", "web", "-n", ns, "--wait")
    cli.kubectl("delete", "configmap", "settings", "-n", ns)
    cli.kubectl("wait", "--for=delete", "pods", "-l", "app=web", "-n", ns, "--timeout=60s")
    cli.helm("uninstall", "rel", "-n", HELM_NS, "--wait", "--timeout", "60s")
    cli.helm("uninstall", "hk", "-n", HELM_NS, "--wait", "--timeout", "60s")
    cli.kubectl("wait", "--for=delete", "pods", "-l", "app=rel", "-n", HELM_NS, "--timeout=60s")
    capture("deleted")


# ---------------------------------------------------------------------------------------------------------
# Snapshots
# ---------------------------------------------------------------------------------------------------------
def snapshot(cli: KubeCLI, namespaces: tuple[str, ...] = (HELM_NS, KUBECTL_NS)) -> list[Obj]:
    """Every object of ``KINDS`` in ``namespaces`` (that exist), as the API answers a GET."""
    items: list[Obj] = []
    listed = json.loads(cli.kubectl("get", "namespaces", "-o", "json").stdout)["items"]
    present = {n["metadata"]["name"] for n in listed}
    for ns in namespaces:
        if ns not in present:
            continue
        doc = json.loads(cli.kubectl("get", ",".join(KINDS), "-n", ns, "-o", "json", "--show-managed-fields").stdout)
        items.extend(doc["items"])
    return items


def settled_snapshot(cli: KubeCLI, timeout: float = 20.0) -> list[Obj]:
    """A snapshot once two in a row agree (Events aside): controllers finish what the last write started."""
    deadline = time.monotonic() + timeout
    previous = normalize(snapshot(cli), events=False)
    while True:
        time.sleep(0.5)
        raw = snapshot(cli)
        current = normalize(raw, events=False)
        if current == previous or time.monotonic() > deadline:
            return raw
        previous = current


# ---------------------------------------------------------------------------------------------------------
# Normalization
# ---------------------------------------------------------------------------------------------------------
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_UID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_IP_KEYS = frozenset({"clusterIP", "clusterIPs", "podIP", "podIPs", "hostIP", "hostIPs", "ip"})
_CLOCK_KEYS = frozenset({"modifiedAt", "createdAt"})  # helm's release-record labels: epoch seconds
_DROPPED_META = frozenset({"uid", "resourceVersion", "creationTimestamp", "selfLink", "deletionTimestamp"})
# Fields no client of ours reads and both sides fill from their own clocks, counters or hashing.
_DROPPED_KEYS = frozenset({"fieldsV1", "time"})


@dataclass
class Names:
    """Generated names and hashes of one snapshot, and the stable token each is replaced with."""

    tokens: dict[str, str] = field(default_factory=dict)

    def learn(self, items: list[Obj]) -> None:
        by_owner: dict[str, list[Obj]] = {}
        for obj in items:
            meta = obj.get("metadata") or {}
            owner = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
            if obj.get("kind") == "ReplicaSet" and owner:
                rev = (meta.get("annotations") or {}).get("deployment.kubernetes.io/revision", "?")
                pod_hash = (meta.get("labels") or {}).get("pod-template-hash", "")
                token = f"{owner['name']}-<rev{rev}>"
                self.tokens[meta["name"]] = token
                if pod_hash:
                    self.tokens[pod_hash] = f"<hash-rev{rev}>"
            if obj.get("kind") == "StatefulSet":  # the revision being rolled out, and the one before it
                status = obj.get("status") or {}
                for key, role in (("updateRevision", "update"), ("currentRevision", "current")):
                    if status.get(key):
                        self.tokens.setdefault(status[key], f"{meta['name']}-<revision:{role}>")
        for obj in items:
            meta = obj.get("metadata") or {}
            owner = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
            if obj.get("kind") == "Pod" and owner and owner.get("kind") in ("ReplicaSet", "Job", "DaemonSet"):
                by_owner.setdefault(owner["name"], []).append(obj)
            sts_revision = (meta.get("labels") or {}).get("controller-revision-hash")
            if obj.get("kind") == "Pod" and sts_revision and owner and owner.get("kind") == "StatefulSet":
                self.tokens.setdefault(sts_revision, f"{owner['name']}-<revision:other>")
        for owner_name, pods in by_owner.items():
            base = self.tokens.get(owner_name, owner_name)
            phases: dict[str, int] = {}
            for pod in sorted(pods, key=lambda p: (p.get("metadata", {}).get("creationTimestamp", ""),
                                                    p["metadata"]["name"])):
                phase = (pod.get("status") or {}).get("phase", "?")
                phases[phase] = phases.get(phase, 0) + 1
                self.tokens[pod["metadata"]["name"]] = f"{base}-<pod:{phase}:{phases[phase]}>"

    def sub(self, value: str) -> str:
        if value in self.tokens:
            return self.tokens[value]
        for raw, token in sorted(self.tokens.items(), key=lambda kv: -len(kv[0])):
            if raw in value:
                value = value.replace(raw, token)
        return value


def _release(data: str) -> Obj:
    """The parts of a helm release record (``data.release``) that do not carry clocks: name, version, status."""
    try:
        record = json.loads(gzip.decompress(base64.b64decode(base64.b64decode(data))))
    except (ValueError, OSError):
        return {"undecodable": True}
    return {"name": record.get("name"), "version": record.get("version"),
            "status": (record.get("info") or {}).get("status"), "namespace": record.get("namespace")}


def _clean(value: Any, names: Names, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _clean(v, names, k) for k, v in value.items() if k not in _DROPPED_KEYS}
    if isinstance(value, list):
        return [_clean(v, names, key) for v in value]
    if isinstance(value, str):
        if key in _IP_KEYS or key == "nodeName":
            return f"<{key}>"
        if key in _CLOCK_KEYS:
            return "<time>"
        if _TIME.match(value):
            return "<time>"
        return _generated(_UID.sub("<uid>", names.sub(value)))
    return value


_SAFE = "[bcdfghjklmnpqrstvwxz2456789]"
_GENERATED = re.compile(rf"-{_SAFE}{{6,10}}(?=-|$)|-{_SAFE}{{5}}$")


def _generated(name: str) -> str:
    """A name some controller generated, suffixes hidden: the object may be gone, so ``Names`` never saw it."""
    return _GENERATED.sub("-<generated>", name)


def _key(kind: str, obj: Obj, names: Names) -> str:
    meta = obj.get("metadata") or {}
    owner = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
    if kind == "ControllerRevision" and owner:
        return f"{kind} {meta.get('namespace', '')}/{owner['name']}-<revision{obj.get('revision', '?')}>"
    return f"{kind} {meta.get('namespace', '')}/{names.sub(meta.get('name', ''))}"


def normalize(items: list[Obj], *, events: bool = True) -> dict[str, Obj]:
    """``{"Kind namespace/name": cleaned object}``; Events fold into one ``Events <involved object>`` entry
    per object (``{"Normal/Reason": count > 0}``)."""
    names = Names()
    names.learn(items)
    out: dict[str, Obj] = {}
    for raw in items:
        kind = raw.get("kind", "?")
        if kind == "Event":
            if not events:
                continue
            involved = raw.get("involvedObject") or {}
            name = _generated(names.sub(involved.get("name", "")))
            if involved.get("kind") == "Pod":  # one entry for a controller's pods: which pod is a matter of timing
                name = re.sub(r"-<(pod:[^>]*|generated)>$", "-<pod>", name)
            key = f"Events {involved.get('namespace', '')}/{involved.get('kind')}/{name}"
            seen = out.setdefault(key, {})
            seen[f"{raw.get('type')}/{raw.get('reason')}"] = True
            continue
        obj = {k: v for k, v in raw.items() if k not in ("apiVersion",)}
        meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _DROPPED_META}
        if isinstance(meta.get("managedFields"), list):
            # One entry per owner: "manager/operation[/subresource]" -> apiVersion. kwok writes pod status in
            # the kubelet's place, so its entries are the kubelet's.
            meta["managedFields"] = {
                "/".join(filter(None, (KWOK_AS.get(e.get("manager"), e.get("manager")), e.get("operation"),
                                       e.get("subresource")))): e.get("apiVersion")
                for e in meta["managedFields"]}
        obj["metadata"] = meta
        if obj.get("type") == "helm.sh/release.v1" and isinstance((obj.get("data") or {}).get("release"), str):
            obj["data"] = {**obj["data"], "release": _release(obj["data"]["release"])}
        out[_key(kind, raw, names)] = _clean(obj, names)
    return out


# ---------------------------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------------------------
_LIST_KEYS = ("name", "type", "manager", "containerPort", "port", "key")


def _item_key(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    if "manager" in item:
        return f"{item['manager']}/{item.get('operation')}" + (f"/{item['subresource']}" if item.get("subresource")
                                                                else "")
    for k in _LIST_KEYS:
        if k in item and isinstance(item[k], str | int):
            return str(item[k])
    return None


def flatten(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, leaf) pairs; lists of named items are keyed by name (``containers[app]``), others by index.
    Empty maps and lists are leaves (``status: {}`` differs from no status)."""
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from flatten(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list) and value:
        keys = [_item_key(v) for v in value]
        use_keys = all(k is not None for k in keys) and len(set(keys)) == len(keys)
        for i, v in enumerate(value):
            yield from flatten(v, f"{path}[{keys[i] if use_keys else i}]")
    else:
        yield path, value


@dataclass(frozen=True)
class Difference:
    checkpoint: str
    object: str  # "Kind namespace/name"
    path: str    # "" for the object itself
    kubesim: Any
    real: Any

    @property
    def kind(self) -> str:
        return self.object.split(" ", 1)[0]

    @property
    def signature(self) -> str:
        """What the allow-list matches: ``Kind path`` with list keys and indices kept."""
        return f"{self.kind} {self.path or '<object>'}"


def compare(checkpoint: str, kubesim: dict[str, Obj], real: dict[str, Obj]) -> list[Difference]:
    diffs: list[Difference] = []
    for key in sorted(set(kubesim) | set(real)):
        if key.startswith("Events "):  # reason by reason: an object with no Event has none of them
            mine_events, real_events = kubesim.get(key, {}), real.get(key, {})
            diffs.extend(Difference(checkpoint, key, reason, mine_events.get(reason, ABSENT),
                                    real_events.get(reason, ABSENT))
                         for reason in sorted(set(mine_events) ^ set(real_events)))
            continue
        if key not in real or key not in kubesim:
            diffs.append(Difference(checkpoint, key, "", "present" if key in kubesim else ABSENT,
                                    "present" if key in real else ABSENT))
            continue
        mine, theirs = dict(flatten(kubesim[key])), dict(flatten(real[key]))
        for path in sorted(set(mine) | set(theirs)):
            a, b = mine.get(path, ABSENT), theirs.get(path, ABSENT)
            if a != b:
                diffs.append(Difference(checkpoint, key, path, a, b))
    return diffs


# ---------------------------------------------------------------------------------------------------------
# Known differences: each (pattern on "Kind path", reason) is also named in kubesim's docstring
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Accepted:
    id: str                    # how kubesim's docstring names it: ``[diff:<id>]``
    patterns: tuple[str, ...]  # fnmatch patterns on Difference.signature ("Kind path")
    reason: str
    objects: tuple[str, ...] = ("*",)  # fnmatch patterns on Difference.object ("Kind namespace/name")
    sometimes: bool = False  # a race of the real controllers: not every run shows it

    def matches(self, diff: Difference) -> bool:
        return (any(fnmatch.fnmatchcase(diff.signature, p) for p in self.patterns)
                and any(fnmatch.fnmatchcase(diff.object, o) for o in self.objects))


ACCEPTED: tuple[Accepted, ...] = (
    Accepted("root-ca", ("ConfigMap <object>",),
             "kube-root-ca.crt (the cluster CA, published into every namespace by a controller) is absent: kubesim "
             "has no CA and nothing of ours reads it (pods' token volumes name it, kubesim mounts nothing)",
             objects=("ConfigMap */kube-root-ca.crt",)),
    Accepted("controller-revisions", ("ControllerRevision <object>",),
             "no ControllerRevisions for StatefulSets (nor DaemonSets): only `kubectl rollout history/undo` of a "
             "StatefulSet reads them; helm and the product read the StatefulSet's own status revisions"),
    Accepted("controller-races", ("Events Warning/FailedDelete", "Events Warning/FailedCreate",
                                  "Events Warning/FailedScheduling"),
             "the real controllers sometimes lose a race (a pod the garbage collector or kwok removed first, a "
             "write on a stale object, a pod the scheduler tried before its node's state caught up) and record a "
             "Warning before retrying; kubesim's controllers and scheduler do not race. "
             "Nothing of ours reads Events",
             sometimes=True),
    Accepted("paced-rollouts", ("ReplicaSet metadata.generation", "ReplicaSet status.observedGeneration",
                                "ReplicaSet metadata.annotations.deployment.kubernetes.io/desired-replicas",
                                "ReplicaSet metadata.annotations.deployment.kubernetes.io/max-replicas"),
             "a rollout is one step in kubesim, so an old ReplicaSet is scaled to 0 in one spec change; the real "
             "controller scales it down (and the new one up) step by step, each a new generation annotated with the "
             "Deployment's replica counts of that moment. Readers compare observedGeneration with the generation of "
             "the same object (equal on both) and read replica counts from the Deployment"),
    Accepted("scaled-mid-rollout", ("Deployment status.conditions[[]Progressing].reason",  # [[] is a literal [
                                     "Deployment status.conditions[[]Progressing].message"),
             "a Deployment scaled while it rolls out: when the real controller's last sync of that rollout is a "
             "scaling one, it updates the replica counts but not the Progressing condition, which keeps "
             "ReplicaSetUpdated until the next rollout sync; kubesim always ends at NewReplicaSetAvailable. Only the "
             "kubectl scenario's web Deployment is scaled mid-rollout; the product's upgrades are whole helm upgrades",
             objects=("Deployment diff-kubectl/web",), sometimes=True),
)


def accepted_for(diff: Difference, accepted: tuple[Accepted, ...] = ACCEPTED) -> Accepted | None:
    return next((a for a in accepted if a.matches(diff)), None)


def reproduced(first: list[Difference], again: list[Difference]) -> list[Difference]:
    """The differences of ``first`` that a second run of the scenario shows again (same object and path).

    kubesim is deterministic; the real controllers race. A new difference that one run shows and the next does not
    is a race still to be named in ``ACCEPTED``, not proof that kubesim is wrong.
    """
    seen = {(x.object, x.path) for x in again}
    return [x for x in first if (x.object, x.path) in seen]


# ---------------------------------------------------------------------------------------------------------
# Running both backends, the report
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Result:
    snapshots: dict[str, dict[str, list[Obj]]]  # backend -> checkpoint -> raw items
    seconds: dict[str, float]

    def differences(self) -> list[Difference]:
        out: list[Difference] = []
        last = list(self.snapshots["kubesim"])[-1]
        for checkpoint, raw in self.snapshots["kubesim"].items():
            # Events accumulate (and outlive their objects): compared once, at the end.
            events = checkpoint == last
            out.extend(compare(checkpoint, normalize(raw, events=events),
                               normalize(self.snapshots["kube"].get(checkpoint, []), events=events)))
        return out


def run_on(cli: KubeCLI) -> tuple[dict[str, list[Obj]], float]:
    snapshots: dict[str, list[Obj]] = {}
    started = time.monotonic()
    run_scenario(cli, lambda checkpoint: snapshots.__setitem__(checkpoint, settled_snapshot(cli)))
    return snapshots, time.monotonic() - started


def run_both(kubesim_cli: KubeCLI, kube_cli: KubeCLI) -> Result:
    """The scenario on both clusters at once (each waits on its own controllers, so they overlap well)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        mine, theirs = pool.submit(run_on, kubesim_cli), pool.submit(run_on, kube_cli)
        (sim_snaps, sim_s), (kube_snaps, kube_s) = mine.result(), theirs.result()
    return Result({"kubesim": sim_snaps, "kube": kube_snaps}, {"kubesim": sim_s, "kube": kube_s})


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 70 else text[:67] + "..."


def report(diffs: list[Difference], accepted: tuple[Accepted, ...] = ACCEPTED) -> tuple[str, list[Difference]]:
    """The readable report (every difference, grouped by signature) and the differences no entry accepts."""
    groups: dict[str, list[Difference]] = {}
    for d in diffs:
        groups.setdefault(d.signature, []).append(d)
    lines: list[str] = []
    unaccepted: list[Difference] = []
    for signature in sorted(groups):
        found = groups[signature]
        entry = accepted_for(found[0], accepted)
        tag = f"accepted [{entry.id}]" if entry else "NEW"
        lines.append(f"{tag:<32} {signature}  ({len(found)}x)")
        if entry is None:
            unaccepted.extend(found)
        for d in found[:3]:
            lines.append(f"    {d.checkpoint:<14} {d.object}: kubesim={_show(d.kubesim)}  real={_show(d.real)}")
        if len(found) > 3:
            lines.append(f"    … {len(found) - 3} more")
    used = {a.id for a in accepted if any(a.matches(d) for d in diffs)}
    lines.append("")
    lines.append(f"{len(diffs)} differences ({len(groups)} distinct kind/path), "
                 f"{len(diffs) - len(unaccepted)} accepted ({len(used)} allow-list entries used), "
                 f"{len(unaccepted)} not accepted")
    return "\n".join(lines), unaccepted


def main(argv: list[str] | None = None) -> int:
    import argparse
    import os
    import tempfile

    from kubecluster.cluster import bin_dir, binaries_present, start_cluster
    from kubecluster.testing import KubeBackend
    from kubesim.testing import start_sandbox

    parser = argparse.ArgumentParser(prog="python -m kubesim.differential", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dump", type=Path, help="write both sides' normalized snapshots (JSON) here")
    args = parser.parse_args(argv)
    if not binaries_present():
        print(f"error: the real control plane's binaries are not in {bin_dir()}: run `make kube`", file=sys.stderr)
        return 2
    tools = ROOT / ".tools" / "bin"
    helm = Path(os.environ.get("DM_HELM_BIN") or tools / "helm")
    kubectl = Path(os.environ.get("DM_KUBECTL_BIN") or tools / "kubectl")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="conformance-diff-") as tmp:
        work = Path(tmp)
        with start_sandbox(work / "kubesim") as sim, start_cluster(work / "kube") as cluster:
            backend = KubeBackend(cluster)
            try:
                real = backend.sandbox(work / "kube-client")
                result = run_both(KubeCLI(helm, kubectl, sim.kubeconfig, work / "home-sim"),
                                  KubeCLI(helm, kubectl, real.kubeconfig, work / "home-kube"))
            finally:
                backend.close()
    diffs = result.differences()
    if args.dump:
        args.dump.write_text(json.dumps({b: {c: normalize(raw) for c, raw in snaps.items()}
                                         for b, snaps in result.snapshots.items()}, indent=1, sort_keys=True))
    text, unaccepted = report(diffs)
    print(text)
    print(f"scenario: kubesim {result.seconds['kubesim']:.1f} s, kube {result.seconds['kube']:.1f} s; "
          f"total with start-up {time.monotonic() - started:.1f} s")
    return 1 if unaccepted else 0


if __name__ == "__main__":
    sys.exit(main())
