"""How each list and map of an object merges, from the Kubernetes OpenAPI extensions.

Contract: :func:`for_object` gives the :class:`Schema` position of an object's root, found by
its ``apiVersion``/``kind`` among the built-in v1.35 definitions; :func:`from_openapi` wraps a
CRD's ``openAPIV3Schema``. Walking with :meth:`Schema.field` / :meth:`Schema.item` reaches the
metadata that both patch flavours need:

- strategic merge patch: ``x-kubernetes-patch-strategy`` (merge / replace / retainKeys) and
  ``x-kubernetes-patch-merge-key``;
- server-side apply: ``x-kubernetes-list-type`` (atomic / set / map), ``-list-map-keys`` and
  ``x-kubernetes-map-type``.

Where no schema is known (a kind without definitions), lists fall back to
:data:`FALLBACK_LISTS`, a table keyed by field name with the keys the core types use, so
containers/env/volumes/ports still merge by key rather than being replaced.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from kubesim.openapi import builtin_definitions

_REF_PREFIXES = ("#/$defs/", "#/definitions/", "#/components/schemas/")


@dataclass(frozen=True)
class ListMeta:
    """Merge behaviour of one list field."""

    strategies: frozenset[str]  # strategic merge patch: {"merge"}, {"merge", "retainKeys"}, {"replace"}, or empty
    merge_key: str | None  # strategic merge patch merge key (maps lists only)
    list_type: str  # server-side apply: "atomic", "set" or "map"
    map_keys: tuple[str, ...]  # server-side apply keys of a "map" list

    @property
    def smp_merge(self) -> bool:
        return "merge" in self.strategies

    @property
    def retain_keys(self) -> bool:
        return "retainKeys" in self.strategies


ATOMIC = ListMeta(frozenset(), None, "atomic", ())


def _keyed(*keys: str, retain: bool = False) -> ListMeta:
    strategies = {"merge", "retainKeys"} if retain else {"merge"}
    return ListMeta(frozenset(strategies), keys[0], "map", keys)


# field name -> list behaviour, for objects whose schema is unknown. Keys as in k8s.io/api core/v1.
FALLBACK_LISTS: dict[str, ListMeta] = {
    "containers": _keyed("name"),
    "initContainers": _keyed("name"),
    "ephemeralContainers": _keyed("name"),
    "env": _keyed("name"),
    "volumes": _keyed("name", retain=True),
    "volumeMounts": _keyed("mountPath"),
    "volumeDevices": _keyed("devicePath"),
    "ports": _keyed("containerPort", "protocol"),
    "imagePullSecrets": _keyed("name"),
    "hostAliases": _keyed("ip"),
    "ownerReferences": _keyed("uid"),
    "conditions": _keyed("type"),
    "finalizers": ListMeta(frozenset({"merge"}), None, "set", ()),
    "tolerations": ATOMIC,
}

# values the apiserver defaults into list-map keys; an applied item without the key matches them
KEY_DEFAULTS: dict[str, Any] = {"protocol": "TCP"}


@functools.cache
def _gvk_index() -> dict[tuple[str, str], str]:
    index: dict[tuple[str, str], str] = {}
    for name, schema in builtin_definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            group, version, kind = gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", "")
            api_version = f"{group}/{version}" if group else version
            index.setdefault((api_version, kind), name)
    return index


class Schema:
    """A position inside an object's schema (``node`` None: unknown, use the fallback table)."""

    __slots__ = ("_node", "_defs", "_name")

    def __init__(self, node: dict[str, Any] | None, defs: dict[str, Any], name: str | None = None) -> None:
        self._node = node
        self._defs = defs
        self._name = name  # the field name that led here, for the fallback table

    @property
    def name(self) -> str | None:
        """The field name that led to this position (None at the root)."""
        return self._name

    @property
    def known(self) -> bool:
        return self._node is not None

    def _resolved(self) -> dict[str, Any] | None:
        node = self._node
        seen = 0
        while node is not None and seen < 32:
            ref = node.get("$ref")
            if not isinstance(ref, str):
                all_of = node.get("allOf")
                if (
                    isinstance(all_of, list)
                    and len(all_of) == 1
                    and isinstance(all_of[0], dict)
                    and not node.get("properties")
                ):
                    node = all_of[0]
                    seen += 1
                    continue
                return node
            target = None
            for prefix in _REF_PREFIXES:
                if ref.startswith(prefix):
                    target = self._defs.get(ref[len(prefix) :])
                    break
            node = target
            seen += 1
        return node

    def field(self, name: str) -> Schema:
        node = self._resolved()
        if node is None:
            return Schema(None, self._defs, name)
        props = node.get("properties")
        if isinstance(props, dict) and name in props:
            return Schema(props[name], self._defs, name)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            return Schema(extra, self._defs, name)
        return Schema(None, self._defs, name)  # free-form or unknown below here

    def item(self) -> Schema:
        node = self._resolved()
        if node is not None and isinstance(node.get("items"), dict):
            return Schema(node["items"], self._defs, self._name)
        return Schema(None, self._defs, self._name)

    def list_meta(self) -> ListMeta:
        node = self._node
        if node is None:
            return FALLBACK_LISTS.get(self._name or "", ATOMIC)
        # extensions sit on the property (next to $ref) or on the referenced schema
        resolved = self._resolved() or {}

        def ext(key: str) -> Any:
            return node.get(key, resolved.get(key))

        strategies = frozenset(s for s in str(ext("x-kubernetes-patch-strategy") or "").split(",") if s)
        merge_key = ext("x-kubernetes-patch-merge-key")
        list_type = ext("x-kubernetes-list-type")
        map_keys = tuple(ext("x-kubernetes-list-map-keys") or ())
        if list_type is None:
            # old-style schemas carry only the SMP hints; SSA treats those lists the same way
            if "merge" in strategies and merge_key:
                list_type, map_keys = "map", (merge_key,)
            elif "merge" in strategies:
                list_type = "set"
            else:
                list_type = "atomic"
        if list_type == "map" and not map_keys and merge_key:
            map_keys = (merge_key,)
        return ListMeta(strategies, merge_key if isinstance(merge_key, str) else None, list_type, map_keys)

    def atomic_map(self) -> bool:
        """True when SSA treats this map/struct as one value (``x-kubernetes-map-type: atomic``)."""
        node = self._node
        if node is None:
            return False
        resolved = self._resolved() or {}
        return node.get("x-kubernetes-map-type", resolved.get("x-kubernetes-map-type")) == "atomic"


def for_kind(api_version: str, kind: str) -> Schema:
    """Root schema of a built-in kind, or an unknown position (fallback table) for others."""
    defs = builtin_definitions()
    name = _gvk_index().get((api_version, kind))
    return Schema(defs.get(name) if name else None, defs)


def for_object(obj: Any) -> Schema:
    if isinstance(obj, dict):
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if isinstance(api_version, str) and isinstance(kind, str):
            return for_kind(api_version, kind)
    return Schema(None, builtin_definitions())


def from_openapi(schema: dict[str, Any]) -> Schema:
    """Wrap an OpenAPI v3 schema (a CRD version's ``openAPIV3Schema``); refs resolve to built-ins.

    CRD schemas rarely spell out ``metadata``; the apiserver treats it as ObjectMeta, so do we.
    """
    props = dict(schema.get("properties") or {})
    props.setdefault("metadata", {"$ref": "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"})
    return Schema({**schema, "properties": props}, builtin_definitions())


def from_crd(crd: dict[str, Any], version: str) -> Schema:
    """The schema of one version of a CustomResourceDefinition (unknown position if it has none)."""
    for ver in (crd.get("spec") or {}).get("versions") or []:
        if isinstance(ver, dict) and ver.get("name") == version:
            schema = (ver.get("schema") or {}).get("openAPIV3Schema")
            if isinstance(schema, dict):
                return from_openapi(schema)
    return Schema(None, builtin_definitions())
