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
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from kubecluster.cluster import KWOK_USER, RunningCluster, cert_user, tls_context, write_kubeconfig
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
# Cluster-scoped kinds the cleaner never touches: the cluster's own fabric, not what a test installs.
CLUSTER_SCOPED_KEPT = frozenset({"namespaces", "nodes", "apiservices", "flowschemas",
                                 "prioritylevelconfigurations", "componentstatuses"})
CLEANER_USER = "deploy-manager-test-cleaner"
# Deleted after the rest (owners first): a ReplicaSet, StatefulSet or Job still there would recreate them.
LAST = {"pods": 2, "replicasets": 1, "controllerrevisions": 1}


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
        self._cleaner = self._issue_cleaner()
        self._client_lock = threading.Lock()
        self._client = self._new_client()
        self._namespaced, cluster_scoped = self._resources()
        # Whatever exists now is the control plane's; anything cluster-scoped a test adds is removed after it.
        self._baseline = {gvr: self._names(gvr) for gvr in cluster_scoped}
        self._watchers: list[tuple[threading.Thread, httpx.Client]] = []
        self._stop_watches = threading.Event()

    def _issue_cleaner(self) -> KeyPair:
        # A distinct identity, so the audit-log stats can leave the cleaner's requests out.
        return CertificateAuthority.load(self.cluster.ca.parent).issue("cleaner", CLEANER_USER, "system:masters")

    def _new_client(self) -> httpx.Client:
        return httpx.Client(base_url=self.cluster.url, verify=tls_context(self.cluster.ca, self._cleaner), timeout=30)

    def close(self) -> None:
        self.stop_watches()
        self._client.close()

    def _names(self, gvr: tuple[str, str, str]) -> set[str]:
        resp = self._request("GET", _path(*gvr))
        if resp.status_code == 404:
            return set()
        return {item["metadata"]["name"] for item in resp.raise_for_status().json()["items"]}

    def _resources(self) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
        """Every (namespaced, cluster-scoped) resource that can be listed and deleted, from discovery."""
        found: list[tuple[str, str, str]] = []
        cluster_scoped: list[tuple[str, str, str]] = []
        core = self._request("GET", "/api/v1").raise_for_status().json()
        groups = [("", "v1", core)]
        for group in self._request("GET", "/apis").raise_for_status().json()["groups"]:
            version = group["preferredVersion"]["version"]
            groups.append((group["name"], version,
                           self._request("GET", f"/apis/{group['name']}/{version}").raise_for_status().json()))
        for group_name, version, doc in groups:
            self._versions.setdefault(group_name, version)
            for res in doc["resources"]:
                verbs = set(res.get("verbs", []))
                if "/" in res["name"] or not {"list", "delete"} <= verbs:
                    continue
                if not res["namespaced"]:
                    if res["name"] not in CLUSTER_SCOPED_KEPT:
                        cluster_scoped.append((group_name, version, res["name"]))
                elif "deletecollection" in verbs:
                    found.append((group_name, version, res["name"]))
        # Owners before what they own (see LAST); events are written by controllers while the cleaner works
        # and matter to no test's next run.
        return sorted((r for r in found if r[2] != "events"), key=self._rank), cluster_scoped

    def version_of(self, group: str) -> str:
        if group not in self._versions:
            self._resources()  # a group a test added (a CRD's)
        return self._versions.get(group, "v1")

    # --- the audit log: what clients asked for, and what the API server answered ------------------------
    def audit_path(self) -> Path:
        return self.cluster.workdir / "audit.log"

    def audit_offset(self) -> int:
        path = self.audit_path()
        return path.stat().st_size if path.exists() else 0

    def audit_events(self, since: int) -> list[Obj]:
        """Completed requests logged after byte ``since`` of the audit log."""
        path = self.audit_path()
        if not path.exists():
            raise NotOnKube("the cluster runs without an audit log, so requests cannot be counted")
        time.sleep(0.3)  # the API server logs a request as its response completes: let the last ones land
        with path.open("rb") as fh:
            fh.seek(since)
            data = fh.read()
        events = [json.loads(line) for line in data.splitlines() if line.strip()]
        return [e for e in events if e.get("stage") == "ResponseComplete"]

    def audit_usage(self, since: int, user: str) -> AuditUsage:
        usage = AuditUsage(user)
        for event in self.audit_events(since):
            if event.get("user", {}).get("username") == user:
                usage.add(event)
        return usage

    def sandbox(self, directory: Path) -> KubeSandbox:
        directory.mkdir(parents=True, exist_ok=True)
        kubeconfig = write_kubeconfig(directory / "kubeconfig", self.cluster.url, self.cluster.ca,
                                      cert_user(self.cluster.admin))
        return KubeSandbox(self.cluster.url, kubeconfig, self)

    def stop_watches(self) -> None:
        """End ``KubeStore.subscribe``'s watches: close the connections under them.

        Each watch thread holds the event it was started with, and checks it before every callback, so a
        thread still unwinding a read after this returns delivers nothing more: no need to wait for it
        (waiting cost seconds per test when a closed connection's read did not return at once)."""
        if not self._watchers:
            return
        self._stop_watches.set()
        for _, client in self._watchers:
            client.close()  # unblocks the streaming read
        deadline = time.monotonic() + 0.5
        for thread, _ in self._watchers:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._watchers.clear()
        self._stop_watches = threading.Event()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One cleaner request; a connection lost under load ("Server disconnected") is retried on a fresh
        client, up to 4 attempts with a short backoff (the cleaner's threads share the client: the first to
        see it broken replaces it). Every request of the cleaner is safe to repeat: reads, and deletes whose
        404 it accepts."""
        for attempt in Retrying(retry=retry_if_exception_type(httpx.TransportError), stop=stop_after_attempt(4),
                                wait=wait_exponential(multiplier=0.2, max=2), reraise=True):
            with attempt:
                client = self._client
                try:
                    return client.request(method, path, **kwargs)
                except httpx.TransportError:
                    with self._client_lock:
                        if self._client is client:
                            client.close()
                            self._client = self._new_client()
                    raise
        raise AssertionError("unreachable: Retrying re-raises the last error")

    def _parallel(self, calls: Iterable[Callable[[], None]]) -> None:
        """Run the cleaner's independent requests side by side: each is an API server round trip (mostly
        waiting on etcd), and a test's cleanup is a few hundred of them."""
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="kube-clean") as pool:
            for future in [pool.submit(call) for call in calls]:
                future.result()

    def _delete_collection(self, namespace: str, group: str, version: str, resource: str) -> None:
        params: dict[str, str] = {"propagationPolicy": "Background", "gracePeriodSeconds": "0"}
        if namespace == "default" and resource in KEEP_IN_DEFAULT:
            params["fieldSelector"] = f"metadata.name!={KEEP_IN_DEFAULT[resource]}"
        resp = self._request("DELETE", _path(group, version, resource, namespace), params=params)
        if resp.status_code not in (200, 404, 405):
            resp.raise_for_status()

    def _empty(self, namespaces: list[str]) -> None:
        """Delete everything in ``namespaces`` (what the control plane keeps in `default` excepted).

        Owners go before what they own (``_resources`` orders them): a ReplicaSet left for later would
        recreate the pods deleted before it."""
        for rank in sorted({self._rank(r) for r in self._namespaced}):
            self._parallel(lambda ns=ns, gvr=gvr: self._delete_collection(ns, *gvr)
                           for ns in namespaces for gvr in self._namespaced if self._rank(gvr) == rank)

    @staticmethod
    def _rank(gvr: tuple[str, str, str]) -> int:
        return LAST.get(gvr[2], 0)

    def _finalize(self, namespace: str) -> None:
        """Delete ``namespace`` and remove it at once through ``finalize``, as the namespace controller would
        once it had emptied it (we did). The controller updates the namespace's status meanwhile, so a
        finalize may meet a conflict: read it again and retry."""
        self._request("DELETE", f"/api/v1/namespaces/{namespace}")
        for _ in range(10):
            resp = self._request("GET", f"/api/v1/namespaces/{namespace}")
            if resp.status_code == 404:
                return
            body = resp.raise_for_status().json()
            body["spec"]["finalizers"] = []
            put = self._request("PUT", f"/api/v1/namespaces/{namespace}/finalize", json=body)
            if put.status_code in (200, 404):
                return
            if put.status_code != 409:
                put.raise_for_status()

    def _remove_cluster_scoped(self, gvr: tuple[str, str, str], before: set[str]) -> None:
        for name in self._names(gvr) - before:
            self._request("DELETE", _path(*gvr, name=name))

    def clean(self, timeout: float = 60) -> None:
        """Put the cluster back as the session found it.

        The namespace controller takes ~5 s per namespace (it rediscovers every resource, then waits for
        its own deletions to settle), which over a hundred tests is minutes: the cleaner empties each
        namespace itself, then removes it through the ``finalize`` subresource, as the controller would.
        """
        self.stop_watches()
        listed = self._request("GET", "/api/v1/namespaces").raise_for_status().json()["items"]
        doomed = sorted({ns["metadata"]["name"] for ns in listed} - SYSTEM_NAMESPACES)
        self._empty([*doomed, "default"])
        self._parallel([*(lambda ns=ns: self._finalize(ns) for ns in doomed),
                        *(lambda gvr=gvr, before=before: self._remove_cluster_scoped(gvr, before)
                          for gvr, before in self._baseline.items())])
        deadline = time.monotonic() + timeout
        while doomed and time.monotonic() < deadline:
            doomed = [ns for ns in doomed if self._request("GET", f"/api/v1/namespaces/{ns}").status_code != 404]
            if doomed:
                time.sleep(0.1)
        if doomed:
            raise RuntimeError(f"namespaces {doomed} still terminating after {timeout} s")


@dataclass
class AuditUsage:
    """One user's requests: (verb, resource[.group][/subresource], namespace or "*cluster*") -> answers."""

    user: str
    calls: dict[tuple[str, str, str], Counter[int]] = field(default_factory=dict)

    def add(self, event: Obj) -> None:
        ref = event.get("objectRef") or {}
        resource = ref.get("resource") or event.get("requestURI", "?")
        if ref.get("apiGroup"):
            resource += f".{ref['apiGroup']}"
        if ref.get("subresource"):
            resource += f"/{ref['subresource']}"
        key = (event["verb"], resource, ref.get("namespace") or "*cluster*")
        code = int((event.get("responseStatus") or {}).get("code", 0))
        self.calls.setdefault(key, Counter())[code] += 1

    @property
    def denied(self) -> set[tuple[str, str, str]]:
        return {key for key, codes in self.calls.items() if 403 in codes}

    def report(self) -> list[str]:
        return [f"{verb:<16} {resource:<48} {ns:<14} {dict(sorted(codes.items()))}"
                for (verb, resource, ns), codes in sorted(self.calls.items(), key=lambda kv: (kv[0][1], kv[0][0]))]


@dataclass(frozen=True)
class WatchEvent:
    """Shaped like kubesim's ``store.Event``: ``rv`` is the object's resourceVersion (etcd's revision)."""

    rv: int
    gr: tuple[str, str]
    type: str
    obj: Obj


# What ``KubeStore.subscribe`` watches: the kinds tests follow the creation order of.
WATCHED = (("batch", "jobs"), ("", "configmaps"), ("", "secrets"), ("apps", "deployments"), ("", "pods"))


@dataclass
class KubeStore:
    """The subset of kubesim's ``Store`` tests read, answered by the API server."""

    backend: KubeBackend

    @property
    def resource_version(self) -> int:
        """etcd's current revision: what every later write's resourceVersion exceeds."""
        doc = self.backend._request("GET", "/api/v1/namespaces/default/configmaps", params={"limit": 1})
        return int(doc.raise_for_status().json()["metadata"]["resourceVersion"])

    def subscribe(self, callback: Callable[[WatchEvent], None]) -> None:
        """Deliver ADDED/MODIFIED/DELETED of the ``WATCHED`` kinds from now on, each kind in commit order,
        until the test ends (``KubeBackend.clean`` stops the watches)."""
        since = self.resource_version
        ready = [threading.Event() for _ in WATCHED]
        for gr, started in zip(WATCHED, ready, strict=True):
            client = self.backend._new_client()
            thread = threading.Thread(target=self._watch, args=(client, gr, since, callback, started), daemon=True,
                                      name=f"watch-{gr[1]}")
            thread.start()
            self.backend._watchers.append((thread, client))
        for started in ready:
            started.wait(10)

    def _watch(self, client: httpx.Client, gr: tuple[str, str], since: int, callback: Callable[[WatchEvent], None],
               started: threading.Event) -> None:
        group, resource = gr
        path = _path(group, self.backend.version_of(group), resource)
        selector = {"fieldSelector": f"metadata.name!={KEEP_IN_DEFAULT[resource]}"} if resource in KEEP_IN_DEFAULT \
            else {}  # the control plane's own objects (kube-root-ca.crt …), which kubesim has none of
        stop = self.backend._stop_watches
        last = since
        for attempt in range(6):
            params = {"watch": "1", "resourceVersion": str(last), "timeoutSeconds": "3600", **selector}
            try:
                with client.stream("GET", path, params=params, timeout=httpx.Timeout(10, read=None)) as resp:
                    started.set()
                    resp.raise_for_status()
                    for line in resp.iter_lines():
                        if stop.is_set():
                            return
                        if not line:
                            continue
                        event = json.loads(line)
                        obj = event["object"]
                        if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                            last = int(obj["metadata"]["resourceVersion"])
                            callback(WatchEvent(last, gr, event["type"], obj))
                return
            except httpx.TransportError:
                # Closing the client under a read is how the watch is stopped; a connection lost under
                # load is resumed from the last event, as an informer would.
                if stop.is_set() or attempt == 5:
                    return
                time.sleep(0.2)
            finally:
                started.set()

    def get(self, gr: tuple[str, str], namespace: str, name: str) -> Obj | None:
        group, resource = gr
        path = _path(group, self.backend.version_of(group), resource, namespace or None, name)
        resp = self.backend._request("GET", path)
        if resp.status_code == 404:
            return None
        return resp.raise_for_status().json()  # type: ignore[no-any-return]

    def list(self, gr: tuple[str, str], namespace: str | None = None) -> tuple[list[Obj], int]:
        group, resource = gr
        doc = self.backend._request("GET", _path(group, self.backend.version_of(group), resource, namespace)) \
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
        self._audit_offset = self.backend.audit_offset()

    def http_client(self, timeout: float = 10) -> httpx.Client:
        """A raw HTTP client on the API server, as cluster-admin (the test's own identity)."""
        cluster = self.backend.cluster
        return httpx.Client(base_url=self.url, verify=tls_context(cluster.ca, cluster.admin), timeout=timeout)

    def stats(self) -> dict[str, Any]:
        by_verb: Counter[str] = Counter()
        by_resource: dict[str, Counter[str]] = {}
        for event in self.backend.audit_events(self._audit_offset):
            username = event.get("user", {}).get("username", "")
            if username.startswith("system:") or username in (CLEANER_USER, KWOK_USER):
                continue  # the control plane's own traffic, not the test's
            verb = event["verb"]
            by_verb[verb] += 1
            ref = event.get("objectRef") or {}
            if ref.get("resource"):
                key = ref["resource"] + (f".{ref['apiGroup']}" if ref.get("apiGroup") else "")
                by_resource.setdefault(key, Counter())[verb] += 1
        return {"requests": sum(by_verb.values()), "writes": sum(n for v, n in by_verb.items() if v in WRITE_VERBS),
                "by_verb": dict(by_verb), "by_resource": {r: dict(c) for r, c in sorted(by_resource.items())}}

    def reset_stats(self) -> dict[str, Any]:
        before = self.stats()
        self._audit_offset = self.backend.audit_offset()
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
