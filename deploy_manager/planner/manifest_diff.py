"""Object-by-object diff between two rendered manifests (pure: no I/O, no helm).

`diff_manifests(old, new, namespace=…, secrets=…)` parses two multi-document YAML streams (the manifest of the
deployed release and the new render), pairs their objects by (kind, namespace, name) and returns one
`ObjectDiff` per object added, removed or changed, each with a unified diff of its canonical YAML.

Nothing secret leaves this module:
- every value of a Secret's `data`/`stringData` is replaced before the diff: `***` when it did not change,
  `<changed>` on the new side when it did (an added key shows `***`);
- the configured secret values (`secrets`: the values under secret-looking keys and `secrets:` paths of both
  the deployed and the new values) and `password: x`-style assignments are masked in every diff text
  (`deploy_manager.redaction`).
"""

from __future__ import annotations

import copy
import difflib
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from deploy_manager.desired.yamlio import load_all_bounded
from deploy_manager.redaction import REDACTED, Redactor

CHANGED = "<changed>"
# Kinds without a namespace: keyed and shown with namespace "".
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "IngressClass",
        "RuntimeClass",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "APIService",
        "Node",
    }
)

Obj = dict[str, Any]


class Change(enum.StrEnum):
    added = "added"
    removed = "removed"
    changed = "changed"


@dataclass(frozen=True, order=True)
class ObjectKey:
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"


@dataclass(frozen=True)
class ObjectDiff:
    kind: str
    namespace: str
    name: str
    change: Change
    diff: str  # unified diff of the object's canonical YAML, masked

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "change": self.change.value,
            "diff": self.diff,
        }


def parse_manifest(text: str, namespace: str) -> dict[ObjectKey, Obj]:
    """The objects of a multi-document manifest by key; an object without a namespace is in `namespace`.

    Documents that are not Kubernetes objects (empty, comments only, no kind or name) are skipped; a `List`
    is expanded into its items."""
    out: dict[ObjectKey, Obj] = {}
    # libyaml when present (a cluster's manifests are thousands of lines), with the alias-expansion bounds.
    for doc in load_all_bounded(text or "", "the release manifest"):
        for obj in doc.get("items") or [] if isinstance(doc, dict) and doc.get("kind") == "List" else [doc]:
            if not isinstance(obj, dict):
                continue
            key = object_key(obj, namespace)
            if key is not None:
                out[key] = obj
    return out


def object_key(obj: Obj, namespace: str) -> ObjectKey | None:
    meta = obj.get("metadata") or {}
    kind, name = obj.get("kind"), meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(kind, str) or not isinstance(name, str) or not kind or not name:
        return None
    ns = "" if kind in CLUSTER_SCOPED else str(meta.get("namespace") or namespace)
    return ObjectKey(kind, ns, name)


def _masked_secret(obj: Obj, other: Obj | None) -> Obj:
    """A Secret with every data value replaced: `<changed>` where it differs from `other`'s, else `***`.
    `other` None: the old side (everything `***`)."""
    out = copy.deepcopy(obj)
    for field in ("data", "stringData"):
        values = out.get(field)
        if not isinstance(values, dict):
            continue
        theirs = (other or {}).get(field) or {}
        for key, value in values.items():
            changed = other is not None and key in theirs and theirs[key] != value
            values[key] = CHANGED if changed else REDACTED
    return out


def _masked_pair(old: Obj | None, new: Obj | None) -> tuple[Obj | None, Obj | None]:
    kind = (new or old or {}).get("kind")
    if kind != "Secret":
        return old, new
    return (
        _masked_secret(old, None) if old is not None else None,
        _masked_secret(new, old if old is not None else {}) if new is not None else None,
    )


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (config files in ConfigMaps) as `|` blocks, so a diff shows the changed line."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    if "\n" in value.strip("\n") and not any(c in value for c in "\t\r") and value == value.rstrip(" "):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def _yaml_lines(obj: Obj | None) -> list[str]:
    if obj is None:
        return []
    text = yaml.dump(obj, Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=10_000)
    return text.splitlines(keepends=True)


def diff_manifests(
    old: str, new: str, *, namespace: str, secrets: Iterable[str] = (), context: int = 3
) -> list[ObjectDiff]:
    """Every object added, removed or changed from `old` to `new`, ordered by (kind, namespace, name)."""
    before = parse_manifest(old, namespace)
    after = parse_manifest(new, namespace)
    masker = Redactor(secrets, assignments=True)
    out: list[ObjectDiff] = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a == b:
            continue
        change = Change.added if a is None else Change.removed if b is None else Change.changed
        ma, mb = _masked_pair(a, b)
        label = str(key)
        lines = difflib.unified_diff(
            _yaml_lines(ma), _yaml_lines(mb), fromfile=f"deployed: {label}", tofile=f"new: {label}", n=context
        )
        text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
        # A Secret's data values are already replaced; its labels and annotations are masked without the
        # assignment rule, which would hide the `<changed>` markers.
        text = Redactor(masker.secrets).text(text) if key.kind == "Secret" else masker.text(text)
        out.append(ObjectDiff(key.kind, key.namespace, key.name, change, text))
    return out
