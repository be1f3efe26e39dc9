"""The patch functions under the real kubectl v1.35 and helm v4.1.4: every patch kind they send.

A minimal loopback store (discovery, OpenAPI from kubesim.openapi, protobuf bodies through
kubesim.codecs, and GET/POST/PUT/PATCH/DELETE that call kubesim.patch) stands in for the sandbox
server so these tests show that what the clients compute — client-side apply's strategic merge
patches with directives, merge and JSON patches, server-side apply with its managedFields
upgrade and conflicts, helm's apply and three-way patches — lands as a cluster would.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from kubesim.codecs import decode_protobuf
from kubesim.openapi import OpenAPIRegistry
from kubesim.patch.apply import managed_paths, record_update, server_side_apply
from kubesim.patch.errors import ApplyConflict, PatchError
from kubesim.patch.jsonpatch import apply_json_patch
from kubesim.patch.merge import json_merge_patch
from kubesim.patch.strategic import strategic_merge_patch
from kubesim.testing import StubHandler, serve_stub

ROOT = Path(__file__).resolve().parents[3]
KUBECTL = ROOT / ".tools" / "bin" / "kubectl"
HELM = ROOT / ".tools" / "bin" / "helm"

pytestmark = pytest.mark.helm

RESOURCES = {"v1": [("configmaps", "ConfigMap"), ("secrets", "Secret")], "apps/v1": [("deployments", "Deployment")]}


class _Store(StubHandler):
    registry: OpenAPIRegistry
    objects: dict[str, dict[str, Any]]
    patches: list[tuple[str, str]]  # (content type, field manager) of each PATCH
    lock: threading.Lock

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
            if (
                self.command == "GET"
                and p not in self.objects
                and p.split("/")[-1] in {"secrets", "deployments", "configmaps"}
            ):
                wanted = [kv.split("=", 1) for kv in query.get("labelSelector", [""])[0].split(",") if "=" in kv]
                items = [
                    o
                    for k, o in self.objects.items()
                    if k.rsplit("/", 1)[0] == p and all(o["metadata"].get("labels", {}).get(a) == b for a, b in wanted)
                ]
                # typed clients (helm's release storage) need the real list kind, not "List"
                kind = {"secrets": "SecretList", "configmaps": "ConfigMapList", "deployments": "DeploymentList"}
                api_version = "apps/v1" if "/apps/" in p else "v1"
                lst = {"kind": kind[p.split("/")[-1]], "apiVersion": api_version, "metadata": {"resourceVersion": "1"}}
                return self._send(200, {**lst, "items": items})
            if self.command == "DELETE":
                gone = self.objects.pop(p, None)
                return self._send(200, gone) if gone else self._status(404, "NotFound")
            if self.command == "POST":
                obj = decode_protobuf(body) if body.startswith(b"k8s\x00") else json.loads(body)
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
                obj = decode_protobuf(body) if body.startswith(b"k8s\x00") else json.loads(body)
                self._store(p, record_update(live, obj, manager or "unknown"))
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
                return self._send(409, e.status(p.rsplit("/", 1)[-1], p.split("/")[-2], "apps"))
            except PatchError as e:
                return self._send(e.code, e.status())
            created = live is None
            self._store(p, new)
            return self._send(201 if created else 200, self.objects[p])

    def _store(self, key: str, obj: dict[str, Any]) -> None:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", "uid-" + key.rsplit("/", 1)[-1])
        meta["resourceVersion"] = str(int(meta.get("resourceVersion") or 0) + 1)
        self.objects[key] = obj

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any


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
    home = tmp_path_factory.mktemp("kubectl")
    with serve_stub(handler, home) as env:
        for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
            env[var] = str(home / var.lower())
        yield handler, env


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


CHART_V1 = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: app
        image: app:1
        env: [{{name: MODE, value: blue}}, {{name: DEBUG, value: "1"}}]
      - name: metrics
        image: metrics:1
"""
CHART_V2 = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: app
        image: app:2
        env: [{{name: MODE, value: green}}]
"""


def _chart(root: Path, template: str, name: str) -> Path:
    (root / "templates").mkdir(parents=True, exist_ok=True)
    (root / "Chart.yaml").write_text("apiVersion: v2\nname: demo\nversion: 0.1.0\n")
    (root / "templates" / "deploy.yaml").write_text(template.format(name=name))
    return root


@pytest.mark.parametrize("server_side", ["true", "false"])
def test_helm_install_upgrade_uninstall(
    cluster: tuple[type[_Store], dict[str, str]], tmp_path: Path, server_side: str
) -> None:
    if not HELM.exists():
        pytest.skip("run `make tools` first")
    store, env = cluster
    release = f"r{server_side}"
    key = f"/apis/apps/v1/namespaces/default/deployments/{release}"
    store.patches.clear()

    def helm(*args: str) -> None:
        res = subprocess.run([str(HELM), *args], env=env, capture_output=True, text=True, timeout=60, check=False)
        assert res.returncode == 0, res.stderr

    helm("install", release, str(_chart(tmp_path / "v1", CHART_V1, release)), f"--server-side={server_side}")
    live = store.objects[key]
    assert [c["name"] for c in live["spec"]["template"]["spec"]["containers"]] == ["app", "metrics"]
    helm("upgrade", release, str(_chart(tmp_path / "v2", CHART_V2, release)), f"--server-side={server_side}")
    live = store.objects[key]
    # both ways, the container and env var the new chart dropped are gone
    assert live["spec"]["template"]["spec"]["containers"] == [
        {"name": "app", "image": "app:2", "env": [{"name": "MODE", "value": "green"}]}
    ]
    assert live["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    kinds = {ctype for ctype, _ in store.patches}
    if server_side == "true":
        assert kinds == {"application/apply-patch+yaml"}
        assert set(managed_paths(live)) == {("helm", "Apply")}
    else:
        assert kinds == {"application/strategic-merge-patch+json"}
    helm("rollback", release, "1")
    assert [c["name"] for c in store.objects[key]["spec"]["template"]["spec"]["containers"]] == ["app", "metrics"]
    helm("uninstall", release)
    assert key not in store.objects
    assert not [k for k in store.objects if f".{release}.v" in k]  # release records deleted too
