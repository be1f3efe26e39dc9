"""The patch functions under the real kubectl v1.35: every patch kind it sends, end to end.

A minimal loopback store (discovery, OpenAPI from kubesim.openapi, and GET/POST/PUT/PATCH that
call kubesim.patch) stands in for the sandbox server so these tests show that what kubectl
computes — client-side apply's strategic merge patches with directives, merge and JSON patches,
server-side apply with its managedFields upgrade and conflicts — lands as a cluster would.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from kubesim.openapi import OpenAPIRegistry
from kubesim.patch.apply import managed_paths, record_update, server_side_apply
from kubesim.patch.errors import ApplyConflict, PatchError
from kubesim.patch.jsonpatch import apply_json_patch
from kubesim.patch.merge import json_merge_patch
from kubesim.patch.strategic import strategic_merge_patch

ROOT = Path(__file__).resolve().parents[3]
KUBECTL = ROOT / ".tools" / "bin" / "kubectl"

pytestmark = pytest.mark.helm

RESOURCES = {"v1": [("configmaps", "ConfigMap")], "apps/v1": [("deployments", "Deployment")]}


class _Store(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    registry: OpenAPIRegistry
    objects: dict[str, dict[str, Any]]
    patches: list[tuple[str, str]]  # (content type, field manager) of each PATCH
    lock: threading.Lock

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, code: int, obj: Any = None, raw: bytes | None = None) -> None:
        body = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _status(self, code: int, reason: str, message: str = "") -> None:
        status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code}
        self._send(code, {**status, "message": message})

    def _discovery(self, p: str) -> bool:
        if p == "/version":
            self._send(200, {"major": "1", "minor": "35", "gitVersion": "v1.35.0"})
        elif p == "/api":
            self._send(200, {"kind": "APIVersions", "versions": ["v1"]})
        elif p == "/apis":
            gv = {"groupVersion": "apps/v1", "version": "v1"}
            group = {"name": "apps", "versions": [gv], "preferredVersion": gv}
            self._send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]})
        elif p.removeprefix("/api/").removeprefix("/apis/") in RESOURCES:
            gv = p.removeprefix("/api/").removeprefix("/apis/")
            verbs = ["create", "get", "list", "patch", "update", "delete"]
            res = [
                {"name": n, "singularName": "", "namespaced": True, "kind": k, "verbs": verbs} for n, k in RESOURCES[gv]
            ]
            self._send(200, {"kind": "APIResourceList", "groupVersion": gv, "resources": res})
        elif p == "/openapi/v3":
            self._send(200, raw=self.registry.v3_index_bytes())
        elif p.startswith("/openapi/v3/"):
            data = self.registry.v3_document_bytes(p.removeprefix("/openapi/v3/"))
            self._send(200, raw=data) if data is not None else self._status(404, "NotFound")
        else:
            return False
        return True

    def _any(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        p = url.path.rstrip("/")
        if self._discovery(p):
            return
        manager = query.get("fieldManager", [""])[0]
        ctype = (self.headers.get("Content-Type") or "").split(";")[0]
        with self.lock:
            if self.command == "POST":
                obj = json.loads(body)
                key = f"{p}/{obj['metadata']['name']}"
                if key in self.objects:
                    return self._status(409, "AlreadyExists")
                self._store(key, record_update(None, obj, manager or "unknown"))
                return self._send(201, self.objects[key])
            live = self.objects.get(p)
            if self.command == "GET":
                return self._send(200, live) if live else self._status(404, "NotFound")
            if self.command == "PUT":
                if live is None:
                    return self._status(404, "NotFound")
                self._store(p, record_update(live, json.loads(body), manager or "unknown"))
                return self._send(200, self.objects[p])
            if self.command != "PATCH":
                return self._status(405, "MethodNotAllowed")
            self.patches.append((ctype, manager))
            try:
                if ctype == "application/apply-patch+yaml":
                    force = query.get("force", ["false"])[0] == "true"
                    new = server_side_apply(live, yaml.safe_load(body), manager, force)
                elif live is None:
                    return self._status(404, "NotFound")
                else:
                    patch = json.loads(body)
                    if ctype == "application/strategic-merge-patch+json":
                        new = strategic_merge_patch(live, patch)
                    elif ctype == "application/merge-patch+json":
                        new = json_merge_patch(live, patch)
                    elif ctype == "application/json-patch+json":
                        new = apply_json_patch(live, patch)
                    else:
                        return self._status(415, "UnsupportedMediaType")
                    new = record_update(live, new, manager or "unknown")
            except ApplyConflict as e:
                return self._status(409, "Conflict", e.message)
            except PatchError as e:
                return self._status(e.code, "Invalid", e.message)
            created = live is None
            self._store(p, new)
            return self._send(201 if created else 200, self.objects[p])

    def _store(self, key: str, obj: dict[str, Any]) -> None:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", "uid-" + key.rsplit("/", 1)[-1])
        meta["resourceVersion"] = str(int(meta.get("resourceVersion") or 0) + 1)
        self.objects[key] = obj

    do_GET = do_POST = do_PUT = do_PATCH = _any


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[type[_Store], dict[str, str]]]:
    if not KUBECTL.exists():
        pytest.skip("run `make tools` first")
    handler = type(
        "Store",
        (_Store,),
        {
            "registry": OpenAPIRegistry(group_versions=RESOURCES),
            "objects": {},
            "patches": [],
            "lock": threading.Lock(),
        },
    )
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    home = tmp_path_factory.mktemp("kubectl")
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "s", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
        "contexts": [{"name": "s", "context": {"cluster": "s", "namespace": "default"}}],
        "current-context": "s",
        "users": [{"name": "u", "user": {}}],
    }
    (home / "kubeconfig").write_text(json.dumps(config))
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "KUBECONFIG": str(home / "kubeconfig")}
    yield handler, env
    server.shutdown()
    server.server_close()


def kubectl(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KUBECTL), *args], env=env, input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def manifest(image: str, containers: list[dict[str, Any]], replicas: int | None = None) -> str:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}},
    }
    if replicas is not None:
        spec["replicas"] = replicas
    containers[0]["image"] = image
    return yaml.safe_dump({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": spec})


def test_client_side_apply_patch_and_server_side_apply(cluster: tuple[type[_Store], dict[str, str]]) -> None:
    store, env = cluster
    key = "/apis/apps/v1/namespaces/default/deployments/web"
    first = [
        {"name": "web", "env": [{"name": "A", "value": "1"}]},
        {"name": "sidecar", "image": "side:1"},
    ]
    res = kubectl(env, "apply", "-f", "-", stdin=manifest("web:1", first))
    assert res.returncode == 0, res.stderr

    # client-side apply of a changed manifest: kubectl sends a strategic merge patch with
    # $setElementOrder and a $patch: delete for the dropped sidecar
    second = [{"name": "web", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]
    store.patches.clear()
    res = kubectl(env, "apply", "-f", "-", stdin=manifest("web:2", second))
    assert res.returncode == 0, res.stderr
    assert store.patches == [("application/strategic-merge-patch+json", "kubectl-client-side-apply")]
    containers = store.objects[key]["spec"]["template"]["spec"]["containers"]
    assert containers == [
        {"name": "web", "image": "web:2", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
    ]

    res = kubectl(env, "patch", "deployment", "web", "--type", "merge", "-p", '{"spec":{"replicas":5}}')
    assert res.returncode == 0, res.stderr
    res = kubectl(
        env, "patch", "deployment", "web", "--type", "json",
        "-p", '[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"web:3"}]',
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    res = kubectl(
        env, "patch", "deployment", "web", "--type", "json", "-p", '[{"op":"test","path":"/spec/replicas","value":9}]'
    )
    assert res.returncode != 0 and "test operation failed" in res.stderr
    live = store.objects[key]
    assert live["spec"]["replicas"] == 5
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "web:3"
    assert managed_paths(live)[("kubectl-patch", "Update")] == [
        ".spec.replicas",
        '.spec.template.spec.containers[name="web"].image',
    ]

    # server-side apply takes over from client-side apply; replicas belongs to kubectl-patch
    third = manifest("web:3", [{"name": "web"}], replicas=2)
    res = kubectl(env, "apply", "--server-side", "-f", "-", stdin=third)
    assert res.returncode != 0
    assert 'conflict with "kubectl-patch" using apps/v1: .spec.replicas' in res.stderr
    res = kubectl(env, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=third)
    assert res.returncode == 0, res.stderr
    live = store.objects[key]
    assert live["spec"]["replicas"] == 2
    owners = managed_paths(live)
    assert ".spec.replicas" in owners[("kubectl", "Apply")]
    assert ".spec.replicas" not in owners.get(("kubectl-patch", "Update"), [])
    # env was only ever client-side applied: the SSA upgrade handed it to "kubectl", and
    # leaving it out of the server-side manifest removes it
    assert "env" not in live["spec"]["template"]["spec"]["containers"][0]

    res = kubectl(env, "get", "deployment", "web", "-o", "json", "--show-managed-fields")
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert {(e["manager"], e["operation"]) for e in got["metadata"]["managedFields"]} >= {("kubectl", "Apply")}
