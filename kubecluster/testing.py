"""The pytest backend on the real control plane: a sandbox-shaped view of one session-wide cluster.

``KubeSandbox`` answers the parts of :class:`kubesim.testing.RunningSandbox` a real cluster can:

- ``url``, ``kubeconfig`` (cluster-admin, in the test's own directory);
- ``state.store.get(("apps", "deployments"), ns, name)`` / ``state.store.list(gr, ns)`` read through the API;
- ``stats()`` / ``reset_stats()`` count the requests the test made (``requests``, ``writes``, ``by_verb``,
  ``by_resource``), read from the API server's audit log: every identity except the control plane's own
  (controllers, scheduler, kwok, this module's cleaner) is counted, as kubesim counts every client;
- ``inject_fault`` / ``set_ready_delay`` raise :class:`NotOnKube`: the ``/_sandbox/`` API exists only in
  kubesim, so a test needing it carries ``@pytest.mark.kubesim_only("why")``.

Between tests :meth:`KubeBackend.clean` puts the cluster back: every namespace the test created is deleted
(and waited for, so the next test may create it again), the ``default`` namespace is emptied except for what
the control plane keeps there, and cluster-scoped objects the test created are deleted.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from kubecluster.cluster import RunningCluster, cert_user, write_kubeconfig
from kubecluster.pki import CertificateAuthority, KeyPair

Obj = dict[str, Any]
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
# What the control plane itself keeps in `default`: the cleaner leaves these names alone.
KEEP_IN_DEFAULT = {
    "serviceaccounts": "default",
    "configmaps": "kube-root-ca.crt",
    "services": "kubernetes",
    "endpoints": "kubernetes",
    "endpointslices": "kubernetes",
}
CLUSTER_SCOPED_CLEANED = (
    ("apiextensions.k8s.io", "v1", "customresourcedefinitions"),
    ("rbac.authorization.k8s.io", "v1", "clusterroles"),
    ("rbac.authorization.k8s.io", "v1", "clusterrolebindings"),
    ("scheduling.k8s.io", "v1", "priorityclasses"),
    ("storage.k8s.io", "v1", "storageclasses"),
    ("", "v1", "persistentvolumes"),
    ("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations"),
    ("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations"),
)
CLEANER_USER = "deploy-manager-test-cleaner"


class NotOnKube(RuntimeError):
    """The test asked for a kubesim-only feature; mark it ``@pytest.mark.kubesim_only("why")``."""


def _path(group: str, version: str, resource: str, namespace: str | None = None, name: str | None = None) -> str:
    base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    if namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{resource}"
    return f"{base}/{name}" if name else base


class KubeBackend:
    """One running cluster shared by a session; ``clean()`` between tests."""

    def __init__(self, cluster: RunningCluster) -> None:
        self.cluster = cluster
        self._versions: dict[str, str] = {}
        cleaner = self._issue_cleaner()
        self._client = httpx.Client(base_url=cluster.url, verify=str(cluster.ca),
                                    cert=(str(cleaner.cert), str(cleaner.key)), timeout=30)
        self._baseline = {gvr: self._names(gvr) for gvr in CLUSTER_SCOPED_CLEANED}
        self._namespaced = self._namespaced_resources()

    def _issue_cleaner(self) -> KeyPair:
        # A distinct identity, so the audit-log stats can leave the cleaner's requests out.
        return CertificateAuthority.load(self.cluster.ca.parent).issue("cleaner", CLEANER_USER, "system:masters")

    def close(self) -> None:
        self._client.close()

    def _names(self, gvr: tuple[str, str, str]) -> set[str]:
        resp = self._client.get(_path(*gvr))
        if resp.status_code == 404:
            return set()
        return {item["metadata"]["name"] for item in resp.raise_for_status().json()["items"]}

    def _namespaced_resources(self) -> list[tuple[str, str, str]]:
        """Every namespaced resource that can be listed and deleted, from discovery."""
        found: list[tuple[str, str, str]] = []
        core = self._client.get("/api/v1").raise_for_status().json()
        groups = [("", "v1", core)]
        for group in self._client.get("/apis").raise_for_status().json()["groups"]:
            version = group["preferredVersion"]["version"]
            groups.append((group["name"], version,
                           self._client.get(f"/apis/{group['name']}/{version}").raise_for_status().json()))
        for group_name, version, doc in groups:
            for res in doc["resources"]:
                if "/" in res["name"] or not res["namespaced"]:
                    continue
                if {"list", "deletecollection"} <= set(res.get("verbs", [])):
                    found.append((group_name, version, res["name"]))
                self._versions.setdefault(group_name, version)
        # Events are written by controllers while the cleaner works and matter to no test's next run.
        return [r for r in found if r[2] != "events"]

    def version_of(self, group: str) -> str:
        if group not in self._versions:
            self._namespaced_resources()
        return self._versions.get(group, "v1")

    def sandbox(self, directory: Path) -> KubeSandbox:
        directory.mkdir(parents=True, exist_ok=True)
        kubeconfig = write_kubeconfig(directory / "kubeconfig", self.cluster.url, self.cluster.ca,
                                      cert_user(self.cluster.admin))
        return KubeSandbox(self.cluster.url, kubeconfig, self)

    def clean(self, timeout: float = 120) -> None:
        client = self._client
        listed = client.get("/api/v1/namespaces").raise_for_status().json()["items"]
        namespaces = {ns["metadata"]["name"] for ns in listed}
        doomed = sorted(namespaces - SYSTEM_NAMESPACES)
        for ns in doomed:
            client.delete(f"/api/v1/namespaces/{ns}")
        for group, version, resource in self._namespaced:
            params = {"propagationPolicy": "Background"}
            if resource in KEEP_IN_DEFAULT:
                params["fieldSelector"] = f"metadata.name!={KEEP_IN_DEFAULT[resource]}"
            resp = client.delete(_path(group, version, resource, "default"), params=params)
            if resp.status_code not in (200, 404, 405):
                resp.raise_for_status()
        for gvr, before in self._baseline.items():
            for name in self._names(gvr) - before:
                client.delete(_path(*gvr, name=name))
        deadline = time.monotonic() + timeout
        while doomed and time.monotonic() < deadline:
            doomed = [ns for ns in doomed if client.get(f"/api/v1/namespaces/{ns}").status_code != 404]
            if doomed:
                time.sleep(0.1)
        if doomed:
            raise RuntimeError(f"namespaces {doomed} still terminating after {timeout} s")


@dataclass
class KubeStore:
    """The subset of kubesim's ``Store`` tests read, answered by the API server."""

    backend: KubeBackend

    def get(self, gr: tuple[str, str], namespace: str, name: str) -> Obj | None:
        group, resource = gr
        path = _path(group, self.backend.version_of(group), resource, namespace or None, name)
        resp = self.backend._client.get(path)
        if resp.status_code == 404:
            return None
        return resp.raise_for_status().json()  # type: ignore[no-any-return]

    def list(self, gr: tuple[str, str], namespace: str | None = None) -> tuple[list[Obj], int]:
        group, resource = gr
        doc = self.backend._client.get(_path(group, self.backend.version_of(group), resource, namespace)) \
            .raise_for_status().json()
        items = sorted(doc["items"], key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return items, int(doc["metadata"]["resourceVersion"])


@dataclass
class KubeState:
    store: KubeStore


@dataclass
class KubeSandbox:
    url: str
    kubeconfig: Path
    backend: KubeBackend
    _audit_offset: int = field(default=0)

    def __post_init__(self) -> None:
        self.state = KubeState(KubeStore(self.backend))
        self._audit_offset = self._audit_size()

    def _audit_path(self) -> Path:
        return self.backend.cluster.workdir / "audit.log"

    def _audit_size(self) -> int:
        path = self._audit_path()
        return path.stat().st_size if path.exists() else 0

    def stats(self) -> dict[str, Any]:
        path = self._audit_path()
        if not path.exists():
            raise NotOnKube("the cluster runs without an audit log, so requests cannot be counted")
        time.sleep(0.3)  # the API server logs a request as its response completes: let the last ones land
        by_verb: Counter[str] = Counter()
        by_resource: dict[str, Counter[str]] = {}
        with path.open("rb") as fh:
            fh.seek(self._audit_offset)
            data = fh.read()
        for line in data.splitlines():
            event = json.loads(line)
            user = event.get("user", {})
            if user.get("username", "").startswith("system:") or user.get("username") == CLEANER_USER:
                continue  # the control plane's own traffic, not the test's
            if event.get("stage") != "ResponseComplete":
                continue
            verb = event["verb"]
            by_verb[verb] += 1
            ref = event.get("objectRef") or {}
            if ref.get("resource"):
                key = ref["resource"] + (f".{ref['apiGroup']}" if ref.get("apiGroup") else "")
                by_resource.setdefault(key, Counter())[verb] += 1
        return {"requests": sum(by_verb.values()), "writes": sum(n for v, n in by_verb.items() if v in WRITE_VERBS),
                "by_verb": dict(by_verb), "by_resource": {r: dict(c) for r, c in sorted(by_resource.items())}}

    def reset_stats(self) -> dict[str, Any]:
        before = self.stats() if self._audit_path().exists() else {}
        self._audit_offset = self._audit_size()
        return before

    def inject_fault(self, **fault: Any) -> dict[str, Any]:
        raise NotOnKube(f"fault {fault.get('type')!r} needs kubesim's /_sandbox/ API: mark the test "
                        f"@pytest.mark.kubesim_only(...)")

    def clear_faults(self) -> None:
        raise NotOnKube("faults exist only in kubesim")

    def set_ready_delay(self, seconds: float) -> None:
        raise NotOnKube("the readiness delay is kubesim's; on the real backend kwok's stages decide")


def copy_logs(cluster: RunningCluster, dest: Path) -> None:
    """Keep the control plane's logs (e.g. for a CI artifact) after the session's directory goes."""
    shutil.copytree(cluster.workdir / "logs", dest, dirs_exist_ok=True)
