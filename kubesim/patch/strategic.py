"""Strategic merge patch (``application/strategic-merge-patch+json``).

Contract: ``strategic_merge_patch(original, patch)`` returns the patched object; neither input is
mutated. Semantics follow k8s.io/apimachinery ``strategicpatch`` as documented in the
Kubernetes "strategic merge patch" developer doc:

- maps merge recursively, ``null`` deletes a key;
- a list whose schema says ``x-kubernetes-patch-strategy: merge`` merges: lists of maps by the
  ``x-kubernetes-patch-merge-key`` (containers, env, volumes by ``name``; ports by
  ``containerPort``; Service ports by ``port`` …), lists of primitives as a deduplicated union
  (finalizers); every other list is replaced (tolerations, args …);
- directives: ``$patch: replace|delete`` on maps and list items, ``$patch: merge`` on maps (a
  no-op), ``$deleteFromPrimitiveList/<field>``, ``$setElementOrder/<field>``, ``$retainKeys``;
- order of merged lists: items named in the patch keep the patch's order, server-only items
  keep their place relative to them (``normalizeElementOrder`` / ``mergeSortedSlice``).

Merge metadata comes from the object's own built-in schema (:mod:`.schema`, found by the
original's ``apiVersion``/``kind``), or from the field-name table for unknown kinds.
Errors raise :class:`PatchError` with 400 (malformed directive) or 422 (does not apply).
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import PatchError
from .schema import Schema, for_object

PATCH = "$patch"
RETAIN_KEYS = "$retainKeys"
DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"
SET_ORDER = "$setElementOrder/"


def strategic_merge_patch(
    original: dict[str, Any], patch: dict[str, Any], schema: Schema | None = None
) -> dict[str, Any]:
    """Apply a strategic merge patch to ``original``; ``schema`` defaults to the original's kind."""
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object", 400)
    base = copy.deepcopy(original) if isinstance(original, dict) else {}
    return _merge_map(base, patch, schema if schema is not None else for_object(original or patch))


def _merge_map(original: dict[str, Any], patch: dict[str, Any], schema: Schema) -> dict[str, Any]:
    """Merge ``patch`` into ``original`` (owned by the caller, mutated and returned)."""
    patch = dict(patch)
    directive = patch.pop(PATCH, None)
    if directive == "replace":
        return _merge_map({}, patch, schema)
    if directive == "delete":
        return {}
    if directive not in (None, "merge"):
        raise PatchError(f"unknown patch type {directive!r} in {sorted(patch)}", 400)

    retain = patch.pop(RETAIN_KEYS, None)
    if retain is not None:
        if not isinstance(retain, list):
            raise PatchError("invalid patch: $retainKeys must be a list", 400)
        for key, value in patch.items():
            if value is not None and not key.startswith(("$", DELETE_PRIMITIVE)) and key not in retain:
                raise PatchError(f"invalid patch: field {key!r} is set but not listed in $retainKeys", 400)
        for key in list(original):
            if key not in retain:
                del original[key]

    orders: dict[str, Any] = {}
    for key in [k for k in patch if k.startswith((DELETE_PRIMITIVE, SET_ORDER))]:
        value = patch.pop(key)
        if key.startswith(SET_ORDER):
            if not isinstance(value, list):
                raise PatchError(f"invalid patch: {key} must be a list", 400)
            orders[key[len(SET_ORDER) :]] = value
            continue
        field = key[len(DELETE_PRIMITIVE) :]
        if not isinstance(value, list):
            raise PatchError(f"invalid patch: {key} must be a list of primitives", 400)
        current = original.get(field)
        if isinstance(current, list):
            original[field] = [v for v in current if v not in value]

    for field, order in orders.items():
        # $setElementOrder: merge the list now and impose the order ($setElementOrder > patch > live)
        child = schema.field(field)
        live = original.get(field)
        live_list = live if isinstance(live, list) else []
        if field in patch:
            given = patch.pop(field)
            if given is None:
                original.pop(field, None)
                continue
            if not isinstance(given, list):
                raise PatchError(f"invalid patch: {field} must be a list to go with {SET_ORDER}{field}", 400)
            merged = _merge_list(live_list, given, child)
        elif isinstance(live, list):
            merged = live
        else:
            continue
        merge_key = child.list_meta().merge_key
        _check_order_entries(field, order, merge_key)
        in_order = [x for x in merged if _index(order, x, merge_key) >= 0]
        rest = [x for x in merged if _index(order, x, merge_key) < 0]
        original[field] = _normalize_order(in_order, rest, order, live_list, merge_key)

    for key, value in patch.items():
        child = schema.field(key)
        if value is None:
            original.pop(key, None)
            continue
        current = original.get(key)
        if isinstance(value, dict):
            original[key] = _merge_map(current if isinstance(current, dict) else {}, value, child)
        elif isinstance(value, list):
            original[key] = _merge_list(current if isinstance(current, list) else [], value, child)
        else:
            original[key] = copy.deepcopy(value)
    return original


def _merge_list(original: list[Any], patch: list[Any], schema: Schema) -> list[Any]:
    if any(isinstance(x, list) for x in patch):
        raise PatchError("lists of lists are not supported by strategic merge patch", 422)
    meta = schema.list_meta()
    item_schema = schema.item()
    if not meta.smp_merge:
        # replace: the patch list as sent (minus directives a client may have left in)
        return [_merge_map({}, x, item_schema) if isinstance(x, dict) else copy.deepcopy(x) for x in patch]
    original = copy.deepcopy(original)
    if not any(isinstance(x, dict) for x in original + patch):
        merged = _dedupe(original + patch)
        in_patch = [x for x in merged if x in patch]
        rest = [x for x in merged if x not in patch]
        return _normalize_order(in_patch, rest, patch, original, None)

    key = meta.merge_key
    if not key:
        raise PatchError(f"cannot merge lists without merge key for {schema.name or 'list'}", 422)
    plain: list[dict[str, Any]] = []
    replace = False
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError(f"list merging by {key!r} expects objects, got {item!r}", 400)
        directive = item.get(PATCH)
        if directive is None:
            plain.append(item)
        elif directive == "delete":
            if key not in item:
                raise PatchError(f"$patch: delete item without merge key {key!r}: {item}", 400)
            original = [x for x in original if not (isinstance(x, dict) and x.get(key) == item[key])]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise PatchError("merging lists cannot yet be specified in the patch", 400)
        else:
            raise PatchError(f"unknown patch type {directive!r} in list item {item}", 400)
    if replace:
        original = []
    server_order = list(original)  # live order before new items are appended
    for item in plain:
        if key not in item:
            raise PatchError(f"map in list is missing merge key {key!r}: {item}", 400)
        at = next((i for i, x in enumerate(original) if isinstance(x, dict) and x.get(key) == item[key]), -1)
        if at >= 0:
            original[at] = _merge_map(original[at], item, item_schema)
        else:
            original.append(_merge_map({}, item, item_schema))
    in_patch = [x for x in original if _index(plain, x, key) >= 0]
    rest = [x for x in original if _index(plain, x, key) < 0]
    return _normalize_order(in_patch, rest, plain, server_order, key)


def _dedupe(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for x in items:
        if x not in out:
            out.append(x)
    return out


def _check_order_entries(field: str, order: list[Any], key: str | None) -> None:
    if key is None:
        return
    for entry in order:
        if not isinstance(entry, dict) or key not in entry:
            raise PatchError(f"invalid patch: every {SET_ORDER}{field} entry needs the merge key {key!r}", 400)


def _index(order: list[Any], item: Any, key: str | None) -> int:
    for i, x in enumerate(order):
        if key is None:
            if x == item:
                return i
        elif isinstance(x, dict) and isinstance(item, dict) and key in x and x.get(key) == item.get(key):
            return i
    return -1


def _sort_by(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    big = len(order)
    return sorted(items, key=lambda x: i if (i := _index(order, x, key)) >= 0 else big)


def _normalize_order(
    patch_items: list[Any], server_only: list[Any], patch_order: list[Any], server_order: list[Any], key: str | None
) -> list[Any]:
    """apimachinery normalizeElementOrder: sort each part, then interleave by the live order."""
    right = _sort_by(patch_items, patch_order, key)
    left = _sort_by(server_only, server_order, key)
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li, ri = _index(server_order, left[i], key), _index(server_order, right[j], key)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out
