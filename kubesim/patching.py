"""Dispatch a PATCH body to the patch semantics its Content-Type names.

The semantics themselves are pure functions in ``kubesim.patch`` (JSON merge patch, JSON patch,
strategic merge patch, server-side apply); this module only decodes the body and maps their
errors to API errors.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from kubesim import errors
from kubesim.patch.errors import ApplyConflict, PatchError
from kubesim.patch.jsonpatch import apply_json_patch
from kubesim.patch.merge import json_merge_patch
from kubesim.patch.schema import Schema
from kubesim.patch.strategic import strategic_merge_patch

Obj = dict[str, Any]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.bad_request(f"error decoding patch: {exc}") from exc


def parse_apply_body(body: bytes) -> Obj:
    try:
        doc = yaml.load(body, Loader=yaml.CSafeLoader)
    except yaml.YAMLError as exc:
        raise errors.bad_request(f"error decoding YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise errors.bad_request("error decoding YAML: the apply configuration must be an object")
    return doc


def patch_error(exc: PatchError) -> errors.ApiError:
    if exc.code == 400:
        return errors.bad_request(exc.message)
    return errors.ApiError(exc.code, "Invalid" if exc.code == 422 else "BadRequest", exc.message)


def conflict_error(exc: ApplyConflict, resource: str, name: str, group: str) -> errors.ApiError:
    details: dict[str, Any] = {"name": name, "kind": resource, "causes": [
        {"reason": "FieldManagerConflict", "message": f'conflict with "{manager}"', "field": field}
        for manager, field in exc.fields]}
    if group:
        details["group"] = group
    return errors.ApiError(409, "Conflict", exc.message, details)


def apply_patch(content_type: str, original: Obj, body: bytes, *, schema: Schema | None, crd: bool) -> Obj:
    """Apply a non-apply patch of ``content_type`` to ``original`` (not mutated); return the result."""

    patch = parse_json(body)
    try:
        if content_type == JSON_PATCH:
            if not isinstance(patch, list):
                raise errors.bad_request("json patch must be a list of operations")
            result = apply_json_patch(original, patch)
        elif content_type == MERGE_PATCH:
            result = json_merge_patch(original, patch)
        elif content_type == STRATEGIC_PATCH:
            if crd:
                raise errors.unsupported_media_type(content_type)
            if not isinstance(patch, dict):
                raise errors.bad_request("strategic merge patch must be a JSON object")
            result = strategic_merge_patch(original, patch, schema)
        else:
            raise errors.unsupported_media_type(content_type)
    except PatchError as exc:
        raise patch_error(exc) from exc
    if not isinstance(result, dict):
        raise errors.bad_request("the patch result is not an object")
    return result
