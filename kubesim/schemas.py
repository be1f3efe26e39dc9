"""Structural validation of built-in objects against the Kubernetes v1.35 JSON schemas that the
``kubernetes-validate`` package ships, the way the apiserver's decoder rejects what it cannot hold:

- a wrong type (``spec: "x"``) is a 400 BadRequest ("cannot be handled as a Deployment"), never a
  crash further down;
- with ``fieldValidation=Strict`` (what helm and kubectl send) an unknown field is a 400
  ``Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field
  "spec.replica"``; without it the apiserver drops unknown
  fields, the sandbox keeps them (harmless in a simulation);
- a missing required field is a 422 Invalid.

Validators are compiled once per kind and cached (~0.3 ms per Deployment). Custom resources are
checked against their CRD version's ``openAPIV3Schema`` (``check_custom``): undeclared fields are
pruned (or a 400 under Strict), violations are a 422 Invalid; CEL rules and formats are not checked.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from importlib import resources
from typing import Any

import jsonschema
from referencing import Registry, Resource

from kubesim import errors

Obj = dict[str, Any]
SCHEMA_DIR = "kubernetes-json-schema/v1.35.0-local-strict"


@functools.cache
def _definitions() -> Resource[Any]:
    base = resources.files("kubernetes_validate") / SCHEMA_DIR
    return Resource.from_contents(json.loads((base / "_definitions.json").read_text()))


_lock = threading.Lock()
_validators: dict[tuple[str, str], Any] = {}


def _validator(api_version: str, kind: str) -> Any:
    key = (api_version, kind)
    with _lock:
        if key in _validators:
            return _validators[key]
    # rbac.authorization.k8s.io/v1 -> rbac-v1, apps/v1 -> apps-v1, v1 -> v1 (kubernetes-validate's naming)
    suffix = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = resources.files("kubernetes_validate") / SCHEMA_DIR / f"{kind.lower()}-{suffix}.json"
    validator = None
    if path.is_file():
        schema = json.loads(path.read_text())
        registry: Registry[Any] = _definitions() @ (Resource.from_contents(schema) @ Registry())
        validator = jsonschema.validators.validator_for(schema)(schema, registry=registry)
    with _lock:
        _validators[key] = validator
    return validator


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def check(obj: Obj, *, strict: bool) -> None:
    """Raise the apiserver's error for the first structural problem of ``obj`` (a built-in kind)."""
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    validator = _validator(api_version, kind)
    if validator is None:
        return
    unknown: list[str] = []
    required: list[tuple[str, str, str]] = []
    for error in validator.iter_errors(obj):
        where = _path(error.absolute_path)
        if error.validator == "additionalProperties":
            if strict:
                extra = set(error.instance) - set(error.schema.get("properties") or {})
                unknown += sorted(f"{where}.{name}" if where else name for name in extra)
            continue
        if error.validator == "required":
            field = re.search(r"'([^']+)' is a required property", error.message)
            name = field.group(1) if field else "?"
            required.append((f"{where}.{name}" if where else name, "FieldValueRequired", "Required value"))
            continue
        version = api_version.rsplit("/", 1)[-1]
        raise errors.bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: '
                                 f"{where or '<root>'}: {error.message}")
    if unknown:
        version = api_version.rsplit("/", 1)[-1]
        raise errors.bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: strict decoding '
                                 "error: " + ", ".join(f'unknown field "{u}"' for u in unknown))
    if required:
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
        raise errors.invalid(kind, (obj.get("metadata") or {}).get("name", ""), required, group)


# --- custom resources: a CRD version's openAPIV3Schema -----------------------------------------

_ROOT_FIELDS = ("apiVersion", "kind", "metadata")
_KEEP = ("type", "enum", "required", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength",
         "maxLength", "pattern", "minItems", "maxItems", "uniqueItems", "minProperties", "maxProperties",
         "multipleOf")


def _to_jsonschema(node: Any) -> Any:
    """OpenAPI v3 (the CRD dialect) -> JSON schema: nullable, int-or-string, nested schemas."""
    if not isinstance(node, dict):
        return {}
    out: Obj = {k: node[k] for k in _KEEP if k in node}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if isinstance(node.get("properties"), dict):
        out["properties"] = {k: _to_jsonschema(v) for k, v in node["properties"].items()}
    if isinstance(node.get("items"), dict):
        out["items"] = _to_jsonschema(node["items"])
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _to_jsonschema(node["additionalProperties"])
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(node.get(key), list):
            out.setdefault("allOf", []).append({key: [_to_jsonschema(n) for n in node[key]]})
    return out


def _prune(value: Any, node: Any, path: str, unknown: list[str]) -> Any:
    """Drop (and report) fields the structural schema does not declare, as the apiserver prunes."""
    if not isinstance(node, dict) or node.get("x-kubernetes-preserve-unknown-fields"):
        return value
    if isinstance(value, dict) and (isinstance(node.get("properties"), dict) or "additionalProperties" in node):
        props = node.get("properties") or {}
        extra = node.get("additionalProperties")
        out = {}
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if key in props:
                out[key] = _prune(item, props[key], where, unknown)
            elif isinstance(extra, dict) or extra is True:
                out[key] = _prune(item, extra, where, unknown) if isinstance(extra, dict) else item
            elif not path and key in _ROOT_FIELDS:
                out[key] = item
            else:
                unknown.append(where)
        return out
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        return [_prune(item, node["items"], f"{path}[{i}]", unknown) for i, item in enumerate(value)]
    return value


@functools.lru_cache(maxsize=256)
def _custom_validator(schema_json: str) -> Any:
    schema = _to_jsonschema(json.loads(schema_json))
    schema.setdefault("properties", {}).pop("metadata", None)  # ObjectMeta is checked like any object's
    return jsonschema.Draft7Validator(schema)


def check_custom(obj: Obj, crd: Obj, version: str, *, strict: bool) -> Obj:
    """Validate a custom resource against its CRD version's schema; return it pruned of unknown
    fields (400 for unknown fields when ``strict``, 422 Invalid for schema violations)."""
    versions = (crd.get("spec") or {}).get("versions") or []
    schema = next(((v.get("schema") or {}).get("openAPIV3Schema") for v in versions
                   if isinstance(v, dict) and v.get("name") == version), None)
    if not isinstance(schema, dict):
        return obj
    unknown: list[str] = []
    pruned = _prune(obj, {**schema, "properties": {**(schema.get("properties") or {}),
                                                   **{k: {"x-kubernetes-preserve-unknown-fields": True}
                                                      for k in _ROOT_FIELDS}}}, "", unknown)
    if unknown and strict:
        kind = obj.get("kind", "")
        raise errors.bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: strict decoding '
                                 "error: " + ", ".join(f'unknown field "{u}"' for u in unknown))
    causes = []
    for error in _custom_validator(json.dumps(schema, sort_keys=True)).iter_errors(pruned):
        where = _path(error.absolute_path) or "<root>"
        if error.validator == "required":
            causes.append((where, "FieldValueRequired", f"Required value: {error.message}"))
        else:
            causes.append((where, "FieldValueInvalid", f"Invalid value: {error.message}"))
    if causes:
        spec = crd.get("spec") or {}
        raise errors.invalid(obj.get("kind", ""), (obj.get("metadata") or {}).get("name", ""), causes,
                             spec.get("group", ""))
    return pruned  # type: ignore[no-any-return]
