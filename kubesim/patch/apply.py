"""Server-side apply and ``metadata.managedFields`` bookkeeping.

Contract:

- ``server_side_apply(live, applied, manager, force)`` returns the object after applying the
  configuration ``applied`` for field manager ``manager`` (``live`` None: create). Raises
  :class:`ApplyConflict` when a field another manager owns would get a different value (unless
  ``force``: ownership moves to ``manager``), :class:`PatchError` for an invalid configuration.
- ``record_update(old, new, manager)`` returns ``new`` with managedFields updated for an
  ordinary create/update/patch (operation ``Update``): ``manager`` owns what it changed and
  other managers lose those fields, never a conflict.

Semantics follow sigs.k8s.io/structured-merge-diff (as used by the apiserver) and the
"Server-Side Apply" reference page: field sets in FieldsV1 form (``f:<field>``,
``k:{"name":"c"}`` for associative-list items, ``v:<json>`` for set items, ``.`` for an owned
node with owned children); the merge follows each list's ``x-kubernetes-list-type`` (``map`` by
its ``x-kubernetes-list-map-keys``, ``set``, else ``atomic`` = replaced) and
``x-kubernetes-map-type``; fields this manager applied before and no longer applies are removed
unless another manager owns them. apiVersion, kind and the server-set metadata (name, namespace,
uid, resourceVersion, generation, creationTimestamp, managedFields …) are never owned.
An object that exists without managedFields is first attributed to ``before-first-apply``.
Not modelled: the last-applied-configuration annotation interplay, version conversion of sets,
the cap on Update managers.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from .errors import ApplyConflict, PatchError
from .schema import KEY_DEFAULTS, ListMeta, Schema, for_object

Path = tuple[str, ...]
FieldValues = dict[Path, Any]

_ITEM = object()  # value recorded for a list-item path: its identity is in the path itself
BEFORE_FIRST_APPLY = "before-first-apply"

# never owned by anyone (apiserver stripMetaManager)
_STRIPPED: frozenset[Path] = frozenset(
    {("f:apiVersion",), ("f:kind",), ("f:metadata",)}
    | {
        ("f:metadata", f"f:{f}")
        for f in (
            "name",
            "namespace",
            "creationTimestamp",
            "selfLink",
            "uid",
            "clusterName",
            "generation",
            "managedFields",
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        )
    }
)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- path elements and field sets -------------------------------------------------------


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _item_pe(item: Any, meta: ListMeta, strict: bool = False) -> str:
    if meta.list_type == "map" and isinstance(item, dict) and meta.map_keys:
        key: dict[str, Any] = {}
        for k in meta.map_keys:
            if k in item and item[k] is not None:
                key[k] = item[k]
            elif k in KEY_DEFAULTS:
                key[k] = KEY_DEFAULTS[k]
            elif strict:
                raise PatchError(
                    f"associative list with keys {list(meta.map_keys)} has an element that omits key field {k!r}", 422
                )
        if key:
            return "k:" + _dump(key)
    return "v:" + _dump(item)


def _field_values(obj: Any, schema: Schema, strict: bool = False) -> FieldValues:
    """Every path structured-merge-diff's ToFieldSet would produce, with the value found there."""
    out: FieldValues = {}

    def walk(value: Any, sch: Schema, path: Path) -> None:
        if isinstance(value, dict):
            if sch.atomic_map() or not value:
                out[path] = value
                return
            for k, v in value.items():
                if v is not None:
                    walk(v, sch.field(k), (*path, f"f:{k}"))
        elif isinstance(value, list):
            meta = sch.list_meta()
            if meta.list_type == "atomic":
                out[path] = value
                return
            item_schema = sch.item()
            seen: set[str] = set()
            for item in value:
                pe = _item_pe(item, meta, strict)
                if pe in seen and strict:
                    raise PatchError(f"duplicate entries for key {pe[2:]} in {_render(path)}", 422)
                seen.add(pe)
                p = (*path, pe)
                out[p] = _ITEM
                if pe.startswith("k:") and isinstance(item, dict):
                    walk_children(item, item_schema, p)
        else:
            out[path] = value

    def walk_children(item: dict[str, Any], sch: Schema, path: Path) -> None:
        for k, v in item.items():
            if v is not None:
                walk(v, sch.field(k), (*path, f"f:{k}"))

    if isinstance(obj, dict):
        walk_children(obj, schema, ())
    return {p: v for p, v in out.items() if p not in _STRIPPED}


def _render(path: Iterable[str]) -> str:
    """structured-merge-diff Path.String(): .spec.containers[name="c"].image"""
    parts: list[str] = []
    for pe in path:
        kind, rest = pe[:2], pe[2:]
        if kind == "f:":
            parts.append("." + rest)
        elif kind == "k:":
            key = json.loads(rest)
            parts.append("[" + ",".join(f"{k}={_dump(v)}" for k, v in key.items()) + "]")
        elif kind == "v:":
            parts.append("[=" + rest + "]")
        else:
            parts.append(f"[{rest}]")
    return "".join(parts)


def fields_to_json(paths: Iterable[Path]) -> dict[str, Any]:
    """Serialize a field set as FieldsV1 JSON."""
    root: dict[str, Any] = {}
    members: list[Path] = []
    for path in sorted(set(paths)):
        node = root
        for pe in path:
            node = node.setdefault(pe, {})
        members.append(path)
    for path in members:  # a member with children is marked by "."
        node = root
        for pe in path:
            node = node[pe]
        if node and "." not in node:
            node["."] = {}
    return _sorted_tree(root)


def _sorted_tree(node: dict[str, Any]) -> dict[str, Any]:
    return {k: _sorted_tree(node[k]) for k in sorted(node, key=lambda k: (k != ".", k))}


def fields_from_json(tree: Any) -> set[Path]:
    """Parse FieldsV1 JSON into a set of paths (malformed parts are ignored)."""
    out: set[Path] = set()

    def walk(node: Any, path: Path) -> None:
        if not isinstance(node, dict):
            return
        if not node and path:
            out.add(path)
            return
        for k, v in node.items():
            if k == ".":
                if path:
                    out.add(path)
            else:
                walk(v, (*path, k))

    walk(tree, ())
    return out


# --- managedFields entries ----------------------------------------------------------------

Key = tuple[str, str, str]  # (manager, operation, subresource)


class _Managers:
    def __init__(self, entries: Any) -> None:
        self.sets: dict[Key, set[Path]] = {}
        self.meta: dict[Key, dict[str, Any]] = {}
        if not isinstance(entries, list):
            return
        for e in entries:
            if not isinstance(e, dict) or not isinstance(e.get("manager", ""), str):
                continue
            key = (e.get("manager", ""), e.get("operation", "Update"), e.get("subresource", "") or "")
            self.sets[key] = fields_from_json(e.get("fieldsV1") or {})
            self.meta[key] = {k: v for k, v in e.items() if k != "fieldsV1"}

    def set_entry(self, key: Key, paths: set[Path], api_version: str, now: str) -> None:
        self.sets[key] = paths
        self.meta[key] = {
            "manager": key[0],
            "operation": key[1],
            "apiVersion": api_version,
            "time": now,
            "fieldsType": "FieldsV1",
            **({"subresource": key[2]} if key[2] else {}),
        }

    def entries(self) -> list[dict[str, Any]]:
        out = []
        for key, paths in self.sets.items():
            if paths:
                out.append({**self.meta[key], "fieldsV1": fields_to_json(paths)})
        # the apiserver lists Apply entries before Update entries, each oldest first
        out.sort(key=lambda e: (e.get("operation") != "Apply", e.get("time") or ""))
        return out


def _with_managed(obj: dict[str, Any], managers: _Managers) -> dict[str, Any]:
    meta = dict(obj.get("metadata") or {})
    entries = managers.entries()
    if entries:
        meta["managedFields"] = entries
    else:
        meta.pop("managedFields", None)
    return {**obj, "metadata": meta}


def _without_managed(obj: dict[str, Any] | None) -> dict[str, Any]:
    if not isinstance(obj, dict):
        return {}
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    return obj


def _compare(old: FieldValues, new: FieldValues) -> tuple[set[Path], set[Path], set[Path]]:
    """(added, modified, removed) between two field-value maps."""
    added = {p for p in new if p not in old}
    removed = {p for p in old if p not in new}
    modified = {p for p in new if p in old and new[p] is not _ITEM and new[p] != old[p]}
    return added, modified, removed


# --- merge and prune ----------------------------------------------------------------------


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _merge(live: Any, cfg: Any, schema: Schema) -> Any:
    if isinstance(cfg, dict) and isinstance(live, dict) and not schema.atomic_map():
        out = dict(live)
        for k, v in cfg.items():
            if v is None:
                continue
            out[k] = _merge(live[k], v, schema.field(k)) if k in live else _clean(v)
        return out
    if isinstance(cfg, list) and isinstance(live, list):
        meta = schema.list_meta()
        if meta.list_type != "atomic":
            return _merge_list(live, cfg, meta, schema.item())
    return _clean(cfg)


def _merge_list(live: list[Any], cfg: list[Any], meta: ListMeta, item_schema: Schema) -> list[Any]:
    """Merge associative/set lists: live order kept, config-only items placed before the next shared item."""
    cfg_pes = [_item_pe(x, meta) for x in cfg]
    cfg_by = dict(zip(cfg_pes, cfg, strict=True))
    live_pes = {_item_pe(x, meta) for x in live}
    out: list[Any] = []
    emitted: set[str] = set()
    ci = 0
    for item in live:
        pe = _item_pe(item, meta)
        if pe in emitted:
            continue
        if pe not in cfg_by:
            out.append(item)
            emitted.add(pe)
            continue
        while ci < len(cfg_pes) and cfg_pes[ci] != pe:
            c = cfg_pes[ci]
            if c not in live_pes and c not in emitted:
                out.append(_clean(cfg_by[c]))
                emitted.add(c)
            ci += 1
        out.append(_merge(item, cfg_by[pe], item_schema))
        emitted.add(pe)
    for c in cfg_pes:
        if c not in emitted:
            out.append(_clean(cfg_by[c]))
            emitted.add(c)
    return out


def _remove_path(obj: dict[str, Any], path: Path, keep: set[Path], schema: Schema) -> None:
    """Delete the node at ``path``; then drop containers it left empty unless someone owns them.

    The key fields of a list item that stays are never removed (the item would lose its identity).
    """
    last = path[-1] if path else ""
    if len(path) >= 2 and path[-2].startswith("k:") and last.startswith("f:") and last[2:] in json.loads(path[-2][2:]):
        return
    chain: list[tuple[Any, Any, Path]] = []  # (container, key-or-index, path of the child)
    node: Any = obj
    sch = schema
    for depth, pe in enumerate(path):
        kind, rest = pe[:2], pe[2:]
        if kind == "f:":
            if not isinstance(node, dict) or rest not in node:
                return
            chain.append((node, rest, path[: depth + 1]))
            node = node[rest]
            sch = sch.field(rest)
        else:
            if not isinstance(node, list):
                return
            meta = sch.list_meta()
            at = next((i for i, x in enumerate(node) if _item_pe(x, meta) == pe), -1)
            if at < 0:
                return
            chain.append((node, at, path[: depth + 1]))
            node = node[at]
            sch = sch.item()
    for container, key, child_path in reversed(chain):
        child = container[key]
        if child_path != path and (child or child_path in keep):
            break  # an ancestor that still holds something, or is owned itself
        del container[key]


def _describe(key: Key, api_version: str) -> str:
    """The apiserver's printManager: '"m"', '"m" with subresource "status"', '"m" using apps/v1'."""
    out = json.dumps(key[0])
    if key[2]:
        out += f" with subresource {json.dumps(key[2])}"
    if key[1] == "Update":
        out += f" using {api_version}"
    return out


# --- public API ---------------------------------------------------------------------------


def server_side_apply(
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    manager: str,
    force: bool,
    *,
    schema: Schema | None = None,
    now: str | None = None,
) -> dict[str, Any]:
    """Apply configuration ``applied`` as ``manager``; see the module docstring."""
    if not isinstance(applied, dict):
        raise PatchError("apply configuration must be an object", 400)
    if not manager:
        raise PatchError("fieldManager is required for apply requests", 400)
    for required in ("apiVersion", "kind"):
        if not isinstance(applied.get(required), str) or not applied[required]:
            raise PatchError(f"apply configuration is missing {required}", 400)
    if (applied.get("metadata") or {}).get("managedFields") is not None:
        raise PatchError("metadata.managedFields must be nil", 400)
    sch = schema if schema is not None else for_object(applied)
    now = now or _now()
    api_version = applied["apiVersion"]
    config = _clean(applied)
    config_fields = _field_values(config, sch, strict=True)
    key: Key = (manager, "Apply", "")

    if live is None:
        managers = _Managers(None)
        managers.set_entry(key, set(config_fields), api_version, now)
        return _with_managed(copy.deepcopy(config), managers)

    live_meta = live.get("metadata") or {}
    managers = _Managers(live_meta.get("managedFields"))
    base = _without_managed(live)
    live_fields = _field_values(base, sch)
    if not managers.sets and live_fields:
        # objects created without field tracking: their fields belong to a placeholder manager
        managers.set_entry((BEFORE_FIRST_APPLY, "Update", ""), set(live_fields), api_version, now)

    merged = _merge(copy.deepcopy(base), config, sch)
    last = managers.sets.get(key, set())
    new_set = set(config_fields)
    others = {k: s for k, s in managers.sets.items() if k != key}
    owned = new_set.union(*others.values()) if others else set(new_set)
    # parents first: removing an unowned list item takes its children (and key fields) with it
    owned_prefixes = {p[:i] for p in owned for i in range(1, len(p) + 1)}
    for path in sorted(last - owned, key=len):
        if path not in owned_prefixes:
            _remove_path(merged, path, owned, sch)

    merged_fields = _field_values(merged, sch)
    added, modified, removed = _compare(live_fields, merged_fields)
    changed = added | modified
    conflicts: list[tuple[str, Path]] = []
    lines: list[str] = []
    owners: list[str] = []
    for other_key, paths in others.items():
        who = _describe(other_key, managers.meta[other_key].get("apiVersion") or api_version)
        for path in sorted(paths & changed):
            conflicts.append((other_key[0], path))
            owners.append(f"conflict with {who}")
            lines.append(f"conflict with {who}: {_render(path)}")
    if conflicts and not force:
        raise ApplyConflict(lines, [(m, _render(p)) for m, p in conflicts], owners)
    for other_key in others:
        managers.sets[other_key] = managers.sets[other_key] - changed - removed
    managers.set_entry(key, new_set, api_version, now)
    return _with_managed(merged, managers)


def record_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    *,
    schema: Schema | None = None,
    now: str | None = None,
    subresource: str = "",
) -> dict[str, Any]:
    """Return ``new`` with managedFields updated for a non-apply write by ``manager``."""
    sch = schema if schema is not None else for_object(new)
    now = now or _now()
    api_version = new.get("apiVersion") if isinstance(new.get("apiVersion"), str) else ""
    old_mf = ((old or {}).get("metadata") or {}).get("managedFields")
    sent = (new.get("metadata") or {}).get("managedFields")
    # SSA reference, "Clearing managedFields": [{}] strips them; [] or absent keeps the stored
    # ones (clients unaware of the field must not wipe it); any other list replaces them.
    if sent == [{}]:
        return _without_managed(new)
    managers = _Managers(sent if isinstance(sent, list) and sent and sent != old_mf else old_mf)
    old_fields = _field_values(_without_managed(old), sch) if old is not None else {}
    new_fields = _field_values(_without_managed(new), sch)
    added, modified, removed = _compare(old_fields, new_fields)
    changed = added | modified
    key: Key = (manager or "unknown", "Update", subresource)
    for other in list(managers.sets):
        if other != key:
            managers.sets[other] = managers.sets[other] - changed - removed
    mine = (managers.sets.get(key, set()) - removed) | changed
    managers.set_entry(key, mine, str(api_version), now)
    return _with_managed(_without_managed(new), managers)


def managed_paths(obj: dict[str, Any]) -> dict[tuple[str, str], list[str]]:
    """Readable view for tests/diagnostics: (manager, operation) -> rendered owned paths."""
    managers = _Managers((obj.get("metadata") or {}).get("managedFields"))
    return {(k[0], k[1]): sorted(_render(p) for p in s) for k, s in managers.sets.items()}
