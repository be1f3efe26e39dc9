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


def apply_patch(content_type: str, original: Obj, body: bytes, *, crd: bool) -> Obj:
    """Apply a non-apply patch of ``content_type`` to ``original`` (not mutated); return the result."""
    PatchError, apply_json_patch, json_merge_patch, strategic_merge_patch = _impl()

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
            result = strategic_merge_patch(original, patch)
        else:
            raise errors.unsupported_media_type(content_type)
    except PatchError as exc:
        raise errors.ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: "
                              f"{exc}") from exc
    if not isinstance(result, dict):
        raise errors.bad_request("the patch result is not an object")
    return result


# TEMPORARY stand-ins until sim-pure's kubesim.patch lands (delete then).
def _impl() -> Any:
    try:
        from kubesim.patch.errors import PatchError
        from kubesim.patch.jsonpatch import apply_json_patch
        from kubesim.patch.merge import json_merge_patch
        from kubesim.patch.strategic import strategic_merge_patch
        return PatchError, apply_json_patch, json_merge_patch, strategic_merge_patch
    except ImportError:
        import copy

        import jsonpatch

        def merge(target: Any, patch: Any) -> Any:
            if not isinstance(patch, dict):
                return copy.deepcopy(patch)
            result = copy.deepcopy(target) if isinstance(target, dict) else {}
            for k, v in patch.items():
                if v is None:
                    result.pop(k, None)
                else:
                    result[k] = merge(result.get(k), v)
            return result

        def smp(target: Any, patch: Any) -> Any:
            if not isinstance(patch, dict):
                return copy.deepcopy(patch)
            result = copy.deepcopy(target) if isinstance(target, dict) else {}
            for k, v in patch.items():
                if k.startswith("$"):
                    continue
                if v is None:
                    result.pop(k, None)
                elif isinstance(v, list) and v and all(isinstance(i, dict) and "name" in i for i in v) and \
                        isinstance(result.get(k), list):
                    old = {i.get("name"): i for i in result[k] if isinstance(i, dict)}
                    merged = [smp(old.get(i["name"]), i) for i in v]
                    names = {i["name"] for i in v}
                    result[k] = [i for i in result[k] if i.get("name") not in names] + merged
                else:
                    result[k] = smp(result.get(k), v)
            return result

        def jp(doc: Any, ops: Any) -> Any:
            try:
                return jsonpatch.apply_patch(doc, ops)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise ValueError(str(exc)) from exc

        return ValueError, jp, merge, smp


def server_side_apply_impl() -> Any:
    try:
        from kubesim.patch.apply import server_side_apply
        from kubesim.patch.errors import ApplyConflict
        return server_side_apply, ApplyConflict
    except ImportError:
        merge = _impl()[2]

        class Conflict(Exception):
            pass

        def ssa(live: Any, applied: Any, manager: str, force: bool) -> Any:
            return merge(live or {}, applied)

        return ssa, Conflict
