"""OpenAPI v2/v3 documents for the sandbox, built from the schemas `kubernetes-validate` ships.

Contract: :class:`OpenAPIRegistry` turns the Kubernetes v1.35 JSON-schema definitions packaged
in ``kubernetes_validate/kubernetes-json-schema/v1.35.0-local/_definitions.json`` into what an
apiserver serves at ``/openapi/v3`` (index), ``/openapi/v3/<api/v1|apis/G/V>`` (one OpenAPI 3.0
document per group-version) and ``/openapi/v2`` (swagger 2.0), plus the schemas of CRDs added
at run time. No I/O besides reading the package data once; documents are cached as serialized
JSON bytes (they are large and clients fetch them on every helm/kubectl command) and the cache
of a group-version is dropped when a CRD changes it.

Why paths matter, not only schemas: helm and kubectl decide how to validate through
``QueryParamVerifierV3`` — they look, in the group-version document, for a PATCH operation
tagged with the object's ``x-kubernetes-group-version-kind`` that accepts the ``fieldValidation``
query parameter. When it is there, validation is left to the server (``fieldValidation=Strict``);
when the GV document is missing they fail with "failed to download openapi". ``kubectl apply``
(client-side) also needs the PATCH operation to list ``application/strategic-merge-patch+json``
before it reads ``x-kubernetes-patch-strategy``/``-merge-key`` from ``components.schemas``.
So every kind gets a PATCH path with those parameters and request content types.

``unknown_fields(obj)`` lists the fields an object's schema does not declare, which is what the
server needs to honour ``fieldValidation=Strict`` (the validation helm and kubectl now leave to it).

The JSON-schema flavour is turned back into what kube-openapi parses: ``type: ["string",
"null"]`` becomes ``type: "string"``, ``#/$defs/`` refs become ``#/components/schemas/`` (v3) or
``#/definitions/`` (v2), IntOrString and Quantity get their apiserver form.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import threading
from collections.abc import Iterable
from importlib import resources
from typing import Any

DEFINITIONS_RESOURCE = ("kubernetes_validate", "kubernetes-json-schema/v1.35.0-local/_definitions.json")
KUBE_VERSION = "v1.35.0"

_V3_REF = "#/components/schemas/"
_V2_REF = "#/definitions/"
_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
# kinds registered in every group version; they are not resources and get no paths
_META_KINDS = {"DeleteOptions", "WatchEvent", "Status", "APIResourceList", "APIGroup", "APIGroupList", "APIVersions"}
# schemas every GV document carries (real apiservers include them through their operations)
_COMMON_ROOTS = [_META + "DeleteOptions", _META + "Status", _META + "WatchEvent", _META + "Patch"]
_PATCH_TYPES = [
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
]
# the schema keywords whose values are schemas / maps of schemas / lists of schemas
_SUB_SCHEMA = ("items", "additionalProperties", "not")
_SCHEMA_MAPS = ("properties", "patternProperties", "definitions", "$defs")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")

GVKey = tuple[str, str]  # (group, version); group "" is the core group


class OpenAPIError(ValueError):
    """A CRD whose schema cannot be published (missing names, versions or schema)."""


def gv_path(group: str, version: str) -> str:
    """The OpenAPI v3 index key of a group-version: ``api/v1`` or ``apis/<group>/<version>``."""
    return f"api/{version}" if group == "" else f"apis/{group}/{version}"


def guess_plural(kind: str) -> str:
    """kubectl's UnsafeGuessKindToResource rule; only used to spell path names of built-in kinds."""
    low = kind.lower()
    if low.endswith("s"):
        return low + "es"
    if low.endswith("y") and len(low) > 1 and low[-2] not in "aeiou":
        return low[:-1] + "ies"
    return low + "s"


def _normalize(schema: Any, ref_prefix: str) -> Any:
    """Rewrite one JSON-schema (2020-12 flavour) into the OpenAPI flavour kube-openapi reads."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            if len(types) == 1:
                out["type"] = types[0]
            elif types:
                out["type"] = types
        elif key == "enum" and isinstance(value, list):
            out["enum"] = [v for v in value if v is not None]
        elif key == "$ref" and isinstance(value, str):
            out["$ref"] = ref_prefix + value.rsplit("/", 1)[-1]
        elif key in _SUB_SCHEMA and isinstance(value, dict):
            out[key] = _normalize(value, ref_prefix)
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {k: _normalize(v, ref_prefix) for k, v in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [_normalize(v, ref_prefix) for v in value]
        else:
            out[key] = value
    return out


def _refs(schema: Any, acc: set[str]) -> None:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(_V3_REF):
            acc.add(ref[len(_V3_REF) :])
        for v in schema.values():
            _refs(v, acc)
    elif isinstance(schema, list):
        for v in schema:
            _refs(v, acc)


@functools.cache
def builtin_definitions() -> dict[str, Any]:
    """The packaged Kubernetes v1.35 schemas as read (JSON-schema flavour, ``#/$defs/`` refs).

    Shared and cached: callers must not mutate it.
    """
    return _load_builtin()


def _load_builtin() -> dict[str, Any]:
    package, name = DEFINITIONS_RESOURCE
    with resources.files(package).joinpath(name).open("rb") as f:
        data = json.load(f)
    defs = data.get("$defs") or data.get("definitions")
    if not isinstance(defs, dict):
        raise OpenAPIError(f"{package}/{name}: no $defs")
    return defs


class _Kind:
    __slots__ = ("group", "version", "kind", "schema", "plural", "namespaced", "strategic")

    def __init__(
        self, group: str, version: str, kind: str, schema: str, plural: str, namespaced: bool, strategic: bool
    ) -> None:
        self.group, self.version, self.kind, self.schema = group, version, kind, schema
        self.plural, self.namespaced, self.strategic = plural, namespaced, strategic


class OpenAPIRegistry:
    """Built-in plus CRD schemas, served as OpenAPI v3 (per group-version) and v2 documents.

    ``group_versions``: if given (``"v1"``, ``"apps/v1"`` …), only these built-in GVs are
    published — keep it equal to what discovery advertises.
    """

    def __init__(self, definitions: dict[str, Any] | None = None, group_versions: Iterable[str] | None = None) -> None:
        raw = definitions if definitions is not None else builtin_definitions()
        self._lock = threading.RLock()
        self._schemas: dict[str, dict[str, Any]] = {name: _normalize(s, _V3_REF) for name, s in raw.items()}
        self._apiserver_forms()
        wanted = (
            None
            if group_versions is None
            else {tuple(gv.split("/", 1)) if "/" in gv else ("", gv) for gv in group_versions}
        )
        self._kinds: dict[GVKey, dict[str, _Kind]] = {}
        for name, schema in self._schemas.items():
            for gvk in schema.get("x-kubernetes-group-version-kind", []):
                g, v, k = gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", "")
                if k in _META_KINDS or not v or (wanted is not None and (g, v) not in wanted):
                    continue
                self._kinds.setdefault((g, v), {})[k] = _Kind(g, v, k, name, guess_plural(k), True, True)
        self._crds: dict[str, list[_Kind]] = {}  # CRD name -> the kinds it publishes
        self._v3_cache: dict[str, tuple[str, bytes]] = {}  # gv path -> (hash, json bytes)
        self._index_cache: bytes | None = None
        self._v2_cache: bytes | None = None

    def _apiserver_forms(self) -> None:
        # the apiserver publishes these as plain strings (format int-or-string), not oneOf
        for name, fmt in (
            ("io.k8s.apimachinery.pkg.util.intstr.IntOrString", "int-or-string"),
            ("io.k8s.apimachinery.pkg.api.resource.Quantity", None),
        ):
            s = self._schemas.get(name)
            if s is not None:
                s.pop("oneOf", None)
                s["type"] = "string"
                if fmt:
                    s["format"] = fmt

    # --- queries -----------------------------------------------------------------------

    def group_versions(self) -> list[GVKey]:
        with self._lock:
            return sorted(self._kinds)

    def schema(self, name: str) -> dict[str, Any] | None:
        """One component schema (v3 refs), or None. Do not mutate the result."""
        with self._lock:
            return self._schemas.get(name)

    def unknown_fields(self, obj: dict[str, Any]) -> list[str]:
        """Fields of ``obj`` its kind's schema does not declare, for ``fieldValidation=Strict``.

        Paths use the apiserver's strict-decoding spelling (``spec.template.spec.containers[0].imagex``).
        Empty when the kind is unknown here or the schema leaves the place free-form
        (``x-kubernetes-preserve-unknown-fields``, objects without declared properties).
        """
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str):
            return []
        group, _, version = api_version.rpartition("/")
        with self._lock:
            k = self._kinds.get((group, version), {}).get(kind)
            root = self._schemas.get(k.schema) if k else None
            if root is None:
                return []
            out: list[str] = []
            self._unknown(obj, root, "", out)
            return out

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        for _ in range(32):
            ref = schema.get("$ref")
            if isinstance(ref, str) and ref.startswith(_V3_REF):
                schema = self._schemas.get(ref[len(_V3_REF) :], {})
                continue
            all_of = schema.get("allOf")
            if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
                schema = all_of[0]
                continue
            break
        return schema

    def _unknown(self, value: Any, schema: dict[str, Any], path: str, out: list[str]) -> None:
        schema = self._resolve(schema)
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return
        if isinstance(value, dict):
            props = schema.get("properties")
            extra = schema.get("additionalProperties")
            for key, child in value.items():
                sub = f"{path}.{key}" if path else key
                if isinstance(props, dict) and key in props:
                    self._unknown(child, props[key], sub, out)
                elif isinstance(extra, dict):
                    self._unknown(child, extra, sub, out)
                elif isinstance(props, dict) and extra is not True:
                    out.append(sub)
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            for i, child in enumerate(value):
                self._unknown(child, schema["items"], f"{path}[{i}]", out)

    # --- v3 ---------------------------------------------------------------------------

    def v3_index(self) -> dict[str, Any]:
        return json.loads(self.v3_index_bytes())

    def v3_index_bytes(self) -> bytes:
        with self._lock:
            if self._index_cache is None:
                paths = {}
                for g, v in sorted(self._kinds):
                    p = gv_path(g, v)
                    digest, _ = self._v3_entry(p)
                    paths[p] = {"serverRelativeURL": f"/openapi/v3/{p}?hash={digest}"}
                self._index_cache = json.dumps({"paths": paths}, separators=(",", ":")).encode()
            return self._index_cache

    def v3_document(self, path: str) -> dict[str, Any] | None:
        data = self.v3_document_bytes(path)
        return None if data is None else json.loads(data)

    def v3_document_bytes(self, path: str) -> bytes | None:
        """Serialized v3 document for ``api/v1`` / ``apis/G/V`` (leading slash tolerated), or None."""
        path = path.strip("/")
        with self._lock:
            if self._gv_of_path(path) is None:
                return None
            return self._v3_entry(path)[1]

    def v3_hash(self, path: str) -> str | None:
        """The ``hash`` query value of a GV document (an ETag for the server), or None."""
        path = path.strip("/")
        with self._lock:
            if self._gv_of_path(path) is None:
                return None
            return self._v3_entry(path)[0]

    def _gv_of_path(self, path: str) -> GVKey | None:
        parts = path.split("/")
        if len(parts) == 2 and parts[0] == "api":
            key: GVKey = ("", parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            key = (parts[1], parts[2])
        else:
            return None
        return key if key in self._kinds else None

    def _v3_entry(self, path: str) -> tuple[str, bytes]:
        cached = self._v3_cache.get(path)
        if cached is None:
            gv = self._gv_of_path(path)
            assert gv is not None
            doc = self._build_v3(gv)
            data = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
            cached = (hashlib.sha512(data).hexdigest().upper()[:64], data)
            self._v3_cache[path] = cached
        return cached

    def _closure(self, roots: Iterable[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        todo = [r for r in roots if r in self._schemas]
        while todo:
            name = todo.pop()
            if name in out:
                continue
            schema = self._schemas[name]
            out[name] = schema
            acc: set[str] = set()
            _refs(schema, acc)
            todo.extend(n for n in acc if n not in out and n in self._schemas)
        return out

    def _build_v3(self, gv: GVKey) -> dict[str, Any]:
        kinds = self._kinds[gv]
        schemas = self._closure([k.schema for k in kinds.values()] + _COMMON_ROOTS)
        paths: dict[str, Any] = {}
        for k in sorted(kinds.values(), key=lambda k: k.kind):
            if k.kind.endswith("List") and k.kind[:-4] in kinds:
                continue  # lists are served from the collection path, not patched
            paths[self._item_path(k)] = self._path_item(k, _V3_REF)
        return {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": KUBE_VERSION},
            "paths": paths,
            "components": {"schemas": schemas},
        }

    @staticmethod
    def _item_path(k: _Kind) -> str:
        base = f"/api/{k.version}" if k.group == "" else f"/apis/{k.group}/{k.version}"
        ns = "/namespaces/{namespace}" if k.namespaced else ""
        return f"{base}{ns}/{k.plural}/{{name}}"

    @staticmethod
    def _path_item(k: _Kind, ref_prefix: str) -> dict[str, Any]:
        v3 = ref_prefix == _V3_REF
        gvk = {"group": k.group, "version": k.version, "kind": k.kind}
        ref = {"$ref": ref_prefix + k.schema}

        def query(name: str, typ: str) -> dict[str, Any]:
            p: dict[str, Any] = {"name": name, "in": "query", "description": name}
            if v3:
                p["schema"] = {"type": typ, "uniqueItems": True}
            else:
                p.update(type=typ, uniqueItems=True)
            return p

        def path_param(name: str) -> dict[str, Any]:
            p: dict[str, Any] = {"name": name, "in": "path", "required": True, "description": name}
            if v3:
                p["schema"] = {"type": "string", "uniqueItems": True}
            else:
                p.update(type="string", uniqueItems=True)
            return p

        ok = {"description": "OK"}
        created = {"description": "Created"}
        content_types = [t for t in _PATCH_TYPES if k.strategic or "strategic" not in t]
        patch: dict[str, Any] = {
            "description": f"partially update the specified {k.kind}",
            "operationId": f"patch{k.kind}",
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [
                query("dryRun", "string"),
                query("fieldManager", "string"),
                query("fieldValidation", "string"),
                query("force", "boolean"),
            ],
        }
        get: dict[str, Any] = {
            "description": f"read the specified {k.kind}",
            "operationId": f"read{k.kind}",
            "x-kubernetes-action": "get",
            "x-kubernetes-group-version-kind": gvk,
        }
        if v3:
            body_schema = {"$ref": ref_prefix + _META + "Patch"}
            patch["requestBody"] = {"content": {t: {"schema": body_schema} for t in content_types}, "required": True}
            resp = {"content": {"application/json": {"schema": ref}, "application/yaml": {"schema": ref}}}
            patch["responses"] = {"200": {**ok, **resp}, "201": {**created, **resp}}
            get["responses"] = {"200": {**ok, **resp}}
        else:
            patch["consumes"] = content_types
            patch["produces"] = ["application/json", "application/yaml"]
            patch["parameters"].append(
                {"name": "body", "in": "body", "required": True, "schema": {"$ref": ref_prefix + _META + "Patch"}}
            )
            patch["responses"] = {"200": {**ok, "schema": ref}, "201": {**created, "schema": ref}}
            get["produces"] = ["application/json", "application/yaml"]
            get["responses"] = {"200": {**ok, "schema": ref}}
        params = [path_param("name")] + ([path_param("namespace")] if k.namespaced else [])
        return {"get": get, "patch": patch, "parameters": params}

    # --- v2 ---------------------------------------------------------------------------

    def v2_document(self) -> dict[str, Any]:
        return json.loads(self.v2_document_bytes())

    def v2_document_bytes(self) -> bytes:
        with self._lock:
            if self._v2_cache is None:
                paths: dict[str, Any] = {}
                for gv in sorted(self._kinds):
                    for k in self._kinds[gv].values():
                        if not (k.kind.endswith("List") and k.kind[:-4] in self._kinds[gv]):
                            paths[self._item_path(k)] = self._path_item(k, _V2_REF)
                doc = {
                    "swagger": "2.0",
                    "info": {"title": "Kubernetes", "version": KUBE_VERSION},
                    "paths": paths,
                    "definitions": self._schemas,
                }
                text = json.dumps(doc, separators=(",", ":"), sort_keys=True)
                # schemas are stored with v3 refs; the quoted prefix only occurs inside "$ref" values
                self._v2_cache = text.replace(f'"{_V3_REF}', f'"{_V2_REF}').encode()
            return self._v2_cache

    # --- CRDs -------------------------------------------------------------------------

    def add_crd(self, crd: dict[str, Any]) -> None:
        """Publish (or replace) the served versions of an apiextensions.k8s.io/v1 CRD."""
        name, kinds, schemas = _crd_schemas(crd)
        with self._lock:
            self._remove_locked(name)
            for k in kinds:
                self._kinds.setdefault((k.group, k.version), {})[k.kind] = k
                self._kinds[(k.group, k.version)][k.kind + "List"] = _Kind(
                    k.group, k.version, k.kind + "List", k.schema + "List", k.plural, k.namespaced, False
                )
                self._invalidate(k.group, k.version)
            self._schemas.update(schemas)
            self._crds[name] = kinds

    def remove_crd(self, name: str) -> None:
        with self._lock:
            self._remove_locked(name)

    def _remove_locked(self, name: str) -> None:
        for k in self._crds.pop(name, []):
            gv = self._kinds.get((k.group, k.version), {})
            gv.pop(k.kind, None)
            gv.pop(k.kind + "List", None)
            if not gv:
                self._kinds.pop((k.group, k.version), None)
            self._schemas.pop(k.schema, None)
            self._schemas.pop(k.schema + "List", None)
            self._invalidate(k.group, k.version)

    def _invalidate(self, group: str, version: str) -> None:
        self._v3_cache.pop(gv_path(group, version), None)
        self._index_cache = None
        self._v2_cache = None


def _crd_schemas(crd: dict[str, Any]) -> tuple[str, list[_Kind], dict[str, dict[str, Any]]]:
    """The kinds and component schemas a CRD publishes (served versions only)."""
    meta = crd.get("metadata") or {}
    spec = crd.get("spec") or {}
    name = meta.get("name")
    names = spec.get("names") or {}
    group, kind, plural = spec.get("group"), names.get("kind"), names.get("plural")
    if not (isinstance(name, str) and isinstance(group, str) and isinstance(kind, str) and isinstance(plural, str)):
        raise OpenAPIError(
            f"CRD {name!r}: metadata.name, spec.group, spec.names.kind and spec.names.plural are required"
        )
    namespaced = spec.get("scope", "Namespaced") == "Namespaced"
    prefix = ".".join(reversed(group.split(".")))  # the apiserver names CRD schemas com.example.v1.Kind
    kinds: list[_Kind] = []
    schemas: dict[str, dict[str, Any]] = {}
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        raise OpenAPIError(f"CRD {name}: spec.versions must be a non-empty list")
    for ver in versions:
        if not isinstance(ver, dict) or not isinstance(ver.get("name"), str):
            raise OpenAPIError(f"CRD {name}: every spec.versions[] needs a name")
        if not ver.get("served", True):
            continue
        v = ver["name"]
        raw = ((ver.get("schema") or {}).get("openAPIV3Schema")) or {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
        }
        schema = _normalize(copy.deepcopy(raw), _V3_REF)
        props = schema.setdefault("properties", {})
        props["apiVersion"] = {"type": "string", "description": "APIVersion of this object"}
        props["kind"] = {"type": "string", "description": "Kind of this object"}
        props["metadata"] = {"$ref": _V3_REF + _META + "ObjectMeta"}
        schema.setdefault("type", "object")
        gvk = {"group": group, "version": v, "kind": kind}
        schema["x-kubernetes-group-version-kind"] = [gvk]
        sname = f"{prefix}.{v}.{kind}"
        schemas[sname] = schema
        schemas[sname + "List"] = {
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"$ref": _V3_REF + _META + "ListMeta"},
                "items": {"type": "array", "items": {"$ref": _V3_REF + sname}},
            },
            "x-kubernetes-group-version-kind": [{**gvk, "kind": kind + "List"}],
        }
        # custom resources accept no strategic merge patch (the apiserver answers 415)
        kinds.append(_Kind(group, v, kind, sname, plural, namespaced, False))
    return name, kinds, schemas
