"""Drift of live objects against a release's manifest (pure: no I/O), table-tested.

Only what the manifest sets is compared, field by field, the way a field-manager-aware comparison sees it:
- a field the manifest does not set is never drift (defaults the API server adds, status, fields other
  controllers write, annotations and labels others add);
- lists of named items (containers, env, ports, volumes, volumeMounts…) are matched by name (or mountPath,
  containerPort, port), not by position, so an item another controller appends is not drift;
- a field the manifest sets empty (`{}`, `[]`, `""`, `false`, `0`) that the API server omits is not drift;
- a Secret's `stringData` is compared with the live `data` (base64), as the API server stores it;
- a missing object is drift.
Paths name fields, never values: `spec.replicas`, `spec.template.spec.containers[api].image`, `data.password`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from deploy_manager.models.desired import DriftPolicy, IgnoreRule
from deploy_manager.models.plan import ActionKind, Plan, Reason, ReleaseState
from deploy_manager.planner.manifest_diff import ObjectKey, parse_manifest

Obj = dict[str, Any]
MISSING_PATH = "<missing>"
_ABSENT = object()
# Keys that identify the items of a list of objects, tried in this order.
_LIST_KEYS = ("name", "mountPath", "devicePath", "containerPort", "port", "ip", "key", "type", "topologyKey")
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_SUFFIX = {
    None: Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}


@dataclass(frozen=True)
class DriftItem:
    kind: str
    namespace: str
    name: str
    paths: tuple[str, ...]
    missing: bool = False
    # The manifest's object (to re-apply it); never shown.
    manifest: Obj = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "paths": list(self.paths),
        }
        if self.missing:
            out["missing"] = True
        return out

    def describe(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}: {'missing' if self.missing else ', '.join(self.paths)}"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _empty(value: Any) -> bool:
    return value is None or value is False or (not isinstance(value, bool) and value in (0, "", {}, []))


def _quantity(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    if isinstance(value, str):
        m = _QUANTITY.match(value.strip())
        if m:
            try:
                return Decimal(m.group(1)) * _SUFFIX[m.group(2)]
            except InvalidOperation:
                return None
    return None


def _same_scalar(want: Any, have: Any, path: str) -> bool:
    if isinstance(want, bool) or isinstance(have, bool):
        return type(want) is type(have) and want == have
    if want == have:
        return True
    if isinstance(want, int | float | str) and isinstance(have, int | float | str) and str(want) == str(have):
        return True  # 8080 vs "8080" (an int-or-string field), 1.0 vs 1
    if ".resources." in f".{path}.":  # "1000m" == "1", "1Gi" == "1073741824": the API server canonicalises
        a, b = _quantity(want), _quantity(have)
        return a is not None and a == b
    return False


def _list_key(items: list[Any]) -> str | None:
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    for key in _LIST_KEYS:
        values = [i.get(key) for i in items]
        if all(v is not None for v in values) and len(set(map(str, values))) == len(values):
            return key
    return None


def compare(want: Any, have: Any, path: str = "") -> Iterator[str]:
    """The paths under `path` where `have` (live) differs from what `want` (manifest) sets."""
    if have is _ABSENT or have is None:
        if not _empty(want) and not (isinstance(want, dict) and all(_empty(v) for v in want.values())):
            yield path
        return
    if isinstance(want, dict):
        if not isinstance(have, dict):
            yield path
            return
        for key, value in want.items():
            yield from compare(value, have.get(key, _ABSENT), _join(path, str(key)))
    elif isinstance(want, list):
        if not isinstance(have, list):
            if want:
                yield path
            return
        key = _list_key(want)
        if key is not None:
            live = {str(i.get(key)): i for i in have if isinstance(i, dict) and i.get(key) is not None}
            for item in want:
                ident = str(item[key])
                yield from compare(item, live.get(ident, _ABSENT), f"{path}[{ident}]")
        elif len(want) != len(have):
            yield path
        else:
            for i, (a, b) in enumerate(zip(want, have, strict=True)):
                yield from compare(a, b, f"{path}[{i}]")
    elif want is None:
        return
    elif not _same_scalar(want, have, path):
        yield path


def object_drift(manifest: Obj, live: Obj | None) -> list[str]:
    """The drifted paths of one object; [MISSING_PATH] if it does not exist."""
    if live is None:
        return [MISSING_PATH]
    paths: list[str] = []
    meta = manifest.get("metadata") or {}
    live_meta = live.get("metadata") or {}
    for part in ("labels", "annotations"):
        if isinstance(meta.get(part), dict):
            paths += compare(meta[part], live_meta.get(part, _ABSENT), f"metadata.{part}")
    want = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind", "metadata", "status")}
    if manifest.get("kind") == "Secret" and isinstance(want.get("stringData"), dict):
        # The API server folds stringData into data (base64) and keeps no stringData.
        data = dict(want.get("data") or {})
        for key, value in want.pop("stringData").items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        want["data"] = data
    for key, value in want.items():
        paths += compare(value, live.get(key, _ABSENT), key)
    return sorted(set(paths))


def apply_ignores(key: ObjectKey, paths: Iterable[str], rules: Iterable[IgnoreRule]) -> list[str]:
    """`paths` without the ones an ignore rule for this object covers."""
    matching = [r for r in rules if r.matches(key.kind, key.namespace, key.name)]
    return [p for p in paths if not any(r.covers(p) for r in matching)]


def release_drift(
    manifest: str | dict[ObjectKey, Obj], namespace: str, live: dict[ObjectKey, Obj], policy: DriftPolicy
) -> list[DriftItem]:
    """Drift of one release: each object of its manifest (text, or already parsed) against the live object
    with the same key."""
    if policy.mode == "off":
        return []
    objects = parse_manifest(manifest, namespace) if isinstance(manifest, str) else manifest
    out: list[DriftItem] = []
    for key, obj in sorted(objects.items()):
        found = live.get(key)
        paths = apply_ignores(key, object_drift(obj, found), policy.ignore)
        if paths:
            missing = found is None
            out.append(DriftItem(key.kind, key.namespace, key.name, tuple(paths), missing, obj))
    return out


MSG_DRIFTED = "live object differs from the release manifest: {what}"


def plan_corrections(plan: Plan, drift: Mapping[str, Sequence[DriftItem]]) -> Plan:
    """`correct_drift` for each component the plan leaves alone (`none`) whose live objects drifted (its
    `drift.mode` is correct: the caller passes only those). A component written anyway needs no correction:
    helm applies its whole manifest."""
    actions = []
    for action in plan.actions:
        items = drift.get(action.component) or ()
        if items and action.action is ActionKind.none:
            reasons = tuple(Reason("drifted", MSG_DRIFTED.format(what=i.describe()), i.paths) for i in items)
            action = replace(action, action=ActionKind.correct_drift, state=ReleaseState.drifted, reasons=reasons)
        actions.append(action)
    return replace(plan, actions=tuple(actions))
