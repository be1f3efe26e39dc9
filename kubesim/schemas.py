"""Structural validation of built-in objects against the Kubernetes v1.35 JSON schemas that the
``kubernetes-validate`` package ships, the way the apiserver's decoder rejects what it cannot hold:

- a wrong type (``spec: "x"``) is a 400 BadRequest ("cannot be handled as a Deployment"), never a
  crash further down;
- with ``fieldValidation=Strict`` (what helm and kubectl send) an unknown field is a 400
  ``strict decoding error: unknown field "spec.replica"``; without it the apiserver drops unknown
  fields, the sandbox keeps them (harmless in a simulation);
- a missing required field is a 422 Invalid.

Validators are compiled once per kind and cached (~0.3 ms per Deployment). Custom resources are
not validated against their CRD schema.
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
        raise errors.bad_request("strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in unknown))
    if required:
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
        raise errors.invalid(kind, (obj.get("metadata") or {}).get("name", ""), required, group)
