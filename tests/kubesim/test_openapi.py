"""kubesim.openapi: the OpenAPI documents helm and kubectl download.

Unit checks on the documents, then the real helm v4.1.4 and kubectl v1.35 binaries against a
minimal loopback stub (discovery + openapi + a dict store, nothing else) to show they accept
them: helm validates a hook manifest (mandatory client validation path), kubectl explains a
field from the v3 schemas and sends fieldValidation to the server instead of failing.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from kubesim.codecs import decode_protobuf
from kubesim.openapi import OpenAPIError, OpenAPIRegistry
from kubesim.testing import StubHandler, serve_stub

ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / ".tools" / "bin" / "helm"
KUBECTL = ROOT / ".tools" / "bin" / "kubectl"

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}},
                    }
                },
            },
            {"name": "v0", "served": False, "storage": False},
        ],
    },
}


@pytest.fixture(scope="module")
def registry() -> OpenAPIRegistry:
    return OpenAPIRegistry()


def _all_refs(obj: Any) -> set[str]:
    found: set[str] = set()

    def walk(o: Any) -> None:
        if isinstance(o, dict):
            if isinstance(o.get("$ref"), str):
                found.add(o["$ref"])
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(obj)
    return found


def test_index_lists_group_versions(registry: OpenAPIRegistry) -> None:
    paths = registry.v3_index()["paths"]
    for p in ("api/v1", "apis/apps/v1", "apis/batch/v1", "apis/networking.k8s.io/v1", "apis/policy/v1"):
        assert paths[p]["serverRelativeURL"].startswith(f"/openapi/v3/{p}?hash=")
    # group versions that only carry DeleteOptions/WatchEvent are not resources' homes
    assert "apis/apps/v1beta1" not in paths


@pytest.mark.parametrize(
    ("path", "schema", "gvk"),
    [
        ("apis/apps/v1", "io.k8s.api.apps.v1.Deployment", {"group": "apps", "version": "v1", "kind": "Deployment"}),
        ("api/v1", "io.k8s.api.core.v1.Secret", {"group": "", "version": "v1", "kind": "Secret"}),
        ("apis/batch/v1", "io.k8s.api.batch.v1.Job", {"group": "batch", "version": "v1", "kind": "Job"}),
    ],
)
def test_v3_document_is_self_contained(registry: OpenAPIRegistry, path: str, schema: str, gvk: dict) -> None:
    doc = registry.v3_document(path)
    assert doc is not None and doc["openapi"].startswith("3.0")
    schemas = doc["components"]["schemas"]
    assert gvk in schemas[schema]["x-kubernetes-group-version-kind"]
    refs = _all_refs(schemas)
    assert refs, "schemas reference each other"
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in schemas, f"dangling {ref}"
    # a PATCH operation for the kind that accepts fieldValidation (what QueryParamVerifierV3 looks for)
    patches = [p["patch"] for p in doc["paths"].values() if p["patch"]["x-kubernetes-group-version-kind"] == gvk]
    assert len(patches) == 1
    assert "fieldValidation" in {q["name"] for q in patches[0]["parameters"]}
    assert "application/strategic-merge-patch+json" in patches[0]["requestBody"]["content"]


def test_types_are_openapi_not_json_schema(registry: OpenAPIRegistry) -> None:
    doc = registry.v3_document("apis/apps/v1")
    assert doc is not None
    schemas = doc["components"]["schemas"]
    spec = schemas["io.k8s.api.apps.v1.DeploymentSpec"]
    assert spec["properties"]["replicas"]["type"] == "integer"  # was ["integer", "null"]
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"] == "int-or-string"
    assert "null" not in json.dumps([s.get("type") for s in schemas.values()])


def test_unknown_paths(registry: OpenAPIRegistry) -> None:
    assert registry.v3_document("apis/nope/v1") is None
    assert registry.v3_document("api/v2") is None
    assert registry.v3_document("garbage") is None
    assert registry.v3_document("/apis/apps/v1") is not None  # leading slash tolerated


def test_v2_document(registry: OpenAPIRegistry) -> None:
    doc = registry.v2_document()
    assert doc["swagger"] == "2.0"
    assert "io.k8s.api.apps.v1.Deployment" in doc["definitions"]
    for ref in _all_refs(doc):
        assert ref.startswith("#/definitions/") and ref.removeprefix("#/definitions/") in doc["definitions"], ref


def test_bytes_are_cached(registry: OpenAPIRegistry) -> None:
    assert registry.v3_document_bytes("apis/apps/v1") is registry.v3_document_bytes("apis/apps/v1")
    assert registry.v2_document_bytes() is registry.v2_document_bytes()


def test_group_version_filter() -> None:
    reg = OpenAPIRegistry(group_versions=["v1", "apps/v1"])
    assert set(reg.v3_index()["paths"]) == {"api/v1", "apis/apps/v1"}


def test_crd_lifecycle() -> None:
    reg = OpenAPIRegistry(group_versions=["v1", "apiextensions.k8s.io/v1"])
    before = reg.v3_index_bytes()
    reg.add_crd(CRD)
    index = reg.v3_index()["paths"]
    assert "apis/example.com/v1" in index and "apis/example.com/v0" not in index  # v0 is not served
    doc = reg.v3_document("apis/example.com/v1")
    assert doc is not None
    widget = doc["components"]["schemas"]["com.example.v1.Widget"]
    assert widget["x-kubernetes-group-version-kind"] == [{"group": "example.com", "version": "v1", "kind": "Widget"}]
    assert widget["properties"]["spec"]["properties"]["size"]["type"] == "integer"
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in doc["components"]["schemas"]
    (patch,) = [
        p["patch"] for p in doc["paths"].values() if p["patch"]["x-kubernetes-group-version-kind"]["kind"] == "Widget"
    ]
    assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]
    assert "com.example.v1.Widget" in reg.v2_document()["definitions"]
    # a changed CRD changes the document hash, so clients' caches refetch it
    h1 = reg.v3_hash("apis/example.com/v1")
    changed = json.loads(json.dumps(CRD))
    changed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["color"] = {
        "type": "string"
    }
    reg.add_crd(changed)
    assert reg.v3_hash("apis/example.com/v1") != h1
    reg.remove_crd("widgets.example.com")
    assert reg.v3_document("apis/example.com/v1") is None
    assert reg.v3_index_bytes() == before


@pytest.mark.parametrize(
    "crd",
    [
        {"metadata": {"name": "x"}, "spec": {}},
        {"metadata": {"name": "a.b"}, "spec": {"group": "b", "names": {"kind": "A", "plural": "a"}, "versions": []}},
        {"metadata": {"name": "a.b"}, "spec": {"group": "b", "names": {"kind": "A", "plural": "a"}, "versions": [{}]}},
    ],
    ids=["no-names", "no-versions", "unnamed-version"],
)
def test_bad_crd_changes_nothing(crd: dict) -> None:
    reg = OpenAPIRegistry(group_versions=["v1"])
    before = reg.v3_index_bytes()
    with pytest.raises(OpenAPIError):
        reg.add_crd(crd)
    assert reg.v3_index_bytes() == before


# --- the real binaries against a stub that serves only discovery, openapi and a dict store ----

RESOURCES = {
    "v1": [("configmaps", "ConfigMap", True), ("secrets", "Secret", True), ("namespaces", "Namespace", False)],
    "apps/v1": [("deployments", "Deployment", True)],
    "batch/v1": [("jobs", "Job", True)],
}


class _Stub(StubHandler):
    registry: OpenAPIRegistry
    store: dict[str, dict]
    log: list[tuple[str, str, dict[str, list[str]], str]]

    def _status(self, code: int, reason: str) -> None:
        self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code})

    def _any(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.log.append((self.command, url.path, parse_qs(url.query), self.headers.get("Content-Type") or ""))
        p = url.path.rstrip("/")
        if p == "/version":
            return self._send(200, {"major": "1", "minor": "35", "gitVersion": "v1.35.0"})
        if p == "/api":
            return self._send(200, {"kind": "APIVersions", "versions": ["v1"]})
        if p == "/apis":
            groups = [
                {"name": gv.split("/")[0], "versions": [{"groupVersion": gv, "version": gv.split("/")[1]}]}
                for gv in RESOURCES
                if "/" in gv
            ]
            for g in groups:
                g["preferredVersion"] = g["versions"][0]
            return self._send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        gv = p.removeprefix("/api/").removeprefix("/apis/")
        if gv in RESOURCES:
            res = [
                {
                    "name": n,
                    "singularName": "",
                    "namespaced": ns,
                    "kind": k,
                    "verbs": ["create", "get", "list", "patch"],
                }
                for n, k, ns in RESOURCES[gv]
            ]
            return self._send(200, {"kind": "APIResourceList", "groupVersion": gv, "resources": res})
        if p == "/openapi/v3":
            return self._send(200, raw=self.registry.v3_index_bytes())
        if p.startswith("/openapi/v3/"):
            data = self.registry.v3_document_bytes(p.removeprefix("/openapi/v3/"))
            return self._send(200, raw=data) if data is not None else self._status(404, "NotFound")
        if p == "/openapi/v2":
            return self._status(404, "NotFound")  # clients want protobuf here; v3 must suffice
        if self.command == "GET" and p in self.store:
            return self._send(200, self.store[p])
        if self.command == "GET":
            items = [o for k, o in self.store.items() if k.rsplit("/", 1)[0] == p]
            if items or p.endswith("s"):
                return self._send(200, {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items})
            return self._status(404, "NotFound")
        if self.command in ("POST", "PUT", "PATCH"):
            obj = decode_protobuf(body) if body.startswith(b"k8s\x00") else json.loads(body or b"{}")
            key = p if self.command != "POST" else f"{p}/{obj['metadata']['name']}"
            if self.command == "PATCH" and "apply-patch" not in (self.headers.get("Content-Type") or ""):
                obj = {**self.store.get(key, {}), "spec": obj.get("spec", self.store.get(key, {}).get("spec"))}
            obj.setdefault("metadata", {}).update(uid="uid-" + key, resourceVersion=str(len(self.log)))
            created = key not in self.store
            self.store[key] = obj
            return self._send(201 if created else 200, obj)
        if self.command == "DELETE":
            gone = self.store.pop(p, None)
            return self._send(200, gone) if gone else self._status(404, "NotFound")
        return self._status(405, "MethodNotAllowed")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[type[_Stub], dict[str, str]]]:
    if not HELM.exists() or not KUBECTL.exists():
        pytest.skip("run `make tools` first")
    handler = type("Stub", (_Stub,), {"registry": OpenAPIRegistry(group_versions=RESOURCES), "store": {}, "log": []})
    home = tmp_path_factory.mktemp("home")
    with serve_stub(handler, home) as env:
        env |= {
            "KUBECACHEDIR": str(home / "kubecache"),
            "HELM_CACHE_HOME": str(home / "hc"),
            "HELM_CONFIG_HOME": str(home / "hcfg"),
            "HELM_DATA_HOME": str(home / "hd"),
        }
        yield handler, env


def _run(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.helm
def test_helm_validates_hook_and_manifest_against_v3(stub: tuple[type[_Stub], dict[str, str]], tmp_path: Path) -> None:
    handler, env = stub
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: oa\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: main\ndata:\n  a: b\n"
    )
    (chart / "templates" / "hook.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hook\n  annotations:\n"
        '    "helm.sh/hook": pre-install\ndata:\n  x: y\n'
    )
    handler.log.clear()
    res = _run([str(HELM), "install", "oa", str(chart)], env)
    assert res.returncode == 0, res.stderr
    fetched = {path for _, path, _, _ in handler.log if path.startswith("/openapi")}
    assert {"/openapi/v3", "/openapi/v3/api/v1"} <= fetched
    # validation was delegated to the server because the PATCH op advertises fieldValidation
    writes = [(m, p, q) for m, p, q, _ in handler.log if p.startswith("/api/v1/namespaces/default/configmaps")]
    assert any(q.get("fieldValidation") == ["Strict"] for m, _, q in writes if m in ("POST", "PATCH")), writes


@pytest.mark.helm
def test_kubectl_explain_reads_v3_schema(stub: tuple[type[_Stub], dict[str, str]]) -> None:
    _, env = stub
    res = _run([str(KUBECTL), "explain", "deployments.spec.replicas"], env)
    assert res.returncode == 0, res.stderr
    assert "replicas" in res.stdout and "<integer>" in res.stdout
    res = _run([str(KUBECTL), "explain", "jobs.spec.template.spec.containers.ports"], env)
    assert res.returncode == 0, res.stderr
    assert "containerPort" in res.stdout


@pytest.mark.helm
def test_kubectl_client_side_apply_uses_v3_patch_metadata(
    stub: tuple[type[_Stub], dict[str, str]], tmp_path: Path
) -> None:
    handler, env = stub
    manifest = tmp_path / "d.yaml"

    def write(image: str) -> None:
        manifest.write_text(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n"
            "    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n"
            f"    spec:\n      containers:\n      - name: web\n        image: {image}\n"
        )

    write("nginx:1")
    res = _run([str(KUBECTL), "apply", "-f", str(manifest)], env)
    assert res.returncode == 0, res.stderr
    write("nginx:2")
    handler.log.clear()
    res = _run([str(KUBECTL), "apply", "-v=5", "-f", str(manifest)], env)
    assert res.returncode == 0, res.stderr
    assert "OpenAPI V3 path does not" not in res.stderr
    assert "error calculating patch from openapi v3" not in res.stderr
    patches = [(q, ct) for m, p, q, ct in handler.log if m == "PATCH" and p.endswith("/deployments/web")]
    assert patches and patches[0][1] == "application/strategic-merge-patch+json"
    assert patches[0][0].get("fieldValidation") == ["Strict"]


# fieldValidation=Strict: the apiserver rejects fields the schema does not declare
# (kubernetes.io/docs/reference/using-api/api-concepts/#field-validation).
STRICT_CASES = [
    (
        "typo in a container field and an unknown metadata field",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "x", "bogus": 1, "labels": {"any": "label"}},
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "c", "imagex": "i", "resources": {"limits": {"cpu": "1"}}}]}
                }
            },
        },
        ["metadata.bogus", "spec.template.spec.containers[0].imagex"],
    ),
    (
        "a valid Job",
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "j", "annotations": {"helm.sh/hook": "pre-install"}},
            "spec": {
                "backoffLimit": 0,
                "template": {"spec": {"containers": [{"name": "c"}], "restartPolicy": "Never"}},
            },
        },
        [],
    ),
    (
        "managedFields and CRD schemas are free-form below their declared roots",
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "a.b", "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {}}}]},
            "spec": {
                "versions": [{"name": "v1", "schema": {"openAPIV3Schema": {"properties": {"x": {"type": "string"}}}}}]
            },
        },
        [],
    ),
    ("an unknown kind is not judged", {"apiVersion": "example.com/v1", "kind": "Nope", "spec": {"x": 1}}, []),
]


@pytest.mark.parametrize(("obj", "expected"), [c[1:] for c in STRICT_CASES], ids=[c[0] for c in STRICT_CASES])
def test_unknown_fields(registry: OpenAPIRegistry, obj: dict, expected: list[str]) -> None:
    assert registry.unknown_fields(obj) == expected


def test_unknown_fields_of_custom_resources() -> None:
    reg = OpenAPIRegistry(group_versions=["v1"])
    reg.add_crd(CRD)
    widget = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": 1, "colour": "x"},
    }
    assert reg.unknown_fields(widget) == ["spec.colour"]
