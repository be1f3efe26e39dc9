"""Label and field selectors: the query-string syntax (``labelSelector=a=b,c in (x,y)``) and the
``metav1.LabelSelector`` object form (``matchLabels`` / ``matchExpressions``).

Parsing errors raise :class:`kubesim.errors.ApiError` 400, as the apiserver does. Field selectors
support ``metadata.name`` / ``metadata.namespace`` everywhere plus the per-kind fields the
apiserver registers (``type`` for Secrets, ``status.phase`` for Pods …); anything else is a 400
"field label not supported", so a client relying on an unsupported selector fails loudly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubesim.errors import bad_request

Obj = dict[str, Any]


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return present and value == self.values[0]
        if self.op == "!=":
            return not present or value != self.values[0]
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("gt", "lt") and present:
            try:
                number = int(value or "")
            except ValueError:
                return False
            bound = int(self.values[0])
            return number > bound if self.op == "gt" else number < bound
        return False


LabelSelector = tuple[Requirement, ...]

_KEY = r"[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?"
_SET_RE = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s*\(([^)]*)\)\s*$")
_EQ_RE = re.compile(rf"^\s*({_KEY})\s*(==|=|!=|>|<)\s*([^,=!<>]*?)\s*$")
_EXISTS_RE = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside ``( … )``."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def parse_label_selector(text: str | None) -> LabelSelector:
    if not text:
        return ()
    requirements: list[Requirement] = []
    for part in _split_top_level(text):
        if m := _SET_RE.match(part):
            values = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
            requirements.append(Requirement(m.group(1), m.group(2), values))
        elif m := _EQ_RE.match(part):
            op = {"==": "=", "=": "=", "!=": "!=", ">": "gt", "<": "lt"}[m.group(2)]
            if op in ("gt", "lt") and not m.group(3).lstrip("-").isdigit():
                raise bad_request(f"unable to parse requirement: {part!r}: for 'Gt', 'Lt' operators, "
                                  "the value must be an integer")
            requirements.append(Requirement(m.group(1), op, (m.group(3),)))
        elif m := _EXISTS_RE.match(part):
            requirements.append(Requirement(m.group(2), "!" if m.group(1) else "exists"))
        else:
            raise bad_request(f"unable to parse requirement: invalid label selector {text!r}")
    return tuple(requirements)


def labels_match(selector: LabelSelector, labels: Mapping[str, str] | None) -> bool:
    labels = labels or {}
    return all(r.matches(labels) for r in selector)


def selector_from_object(selector: Obj | None) -> LabelSelector | None:
    """A ``metav1.LabelSelector`` as requirements; ``None`` (not ``()``) means "selects nothing"."""
    if selector is None:
        return None
    reqs = [Requirement(k, "=", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in selector.get("matchExpressions") or []:
        op = ops.get(expr.get("operator", ""))
        if op is None:
            return None
        reqs.append(Requirement(expr.get("key", ""), op, tuple(expr.get("values") or ())))
    return tuple(reqs)


# --- field selectors ---------------------------------------------------------------------------

FieldSelector = tuple[tuple[str, str, str], ...]  # (field, op "=" | "!=", value)

# Extra selectable fields per (group, resource), mirroring the apiserver's registrations.
_EXTRA_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "secrets"): ("type",),
    ("", "pods"): ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                   "status.phase", "status.podIP", "status.nominatedNodeName"),
    ("", "events"): ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                     "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
                     "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"),
    ("", "namespaces"): ("status.phase",),
    ("", "nodes"): ("spec.unschedulable",),
    ("", "replicationcontrollers"): ("status.replicas",),
    ("apps", "replicasets"): ("status.replicas",),
    ("batch", "jobs"): ("status.successful",),
    ("", "persistentvolumeclaims"): ("status.phase",),
}


def parse_field_selector(text: str | None, group: str, resource: str) -> FieldSelector:
    if not text:
        return ()
    allowed = {"metadata.name", "metadata.namespace", *_EXTRA_FIELDS.get((group, resource), ())}
    result: list[tuple[str, str, str]] = []
    for part in re.split(r"(?<!\\),", text):
        if not part.strip():
            continue
        m = re.match(r"^\s*([^=!]+?)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, value = m.group(1), m.group(2), m.group(3).replace("\\,", ",")
        if field not in allowed:
            raise bad_request(f'field label not supported: {field}')
        result.append((field, "!=" if op == "!=" else "=", value))
    return tuple(result)


def _field_value(obj: Obj, path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, dict):
            return ""
        node = node.get(part)
    if isinstance(node, bool):
        return "true" if node else "false"
    return "" if node is None else str(node)


def fields_match(selector: FieldSelector, obj: Obj) -> bool:
    for field, op, value in selector:
        actual = _field_value(obj, field)
        if (actual == value) != (op == "="):
            return False
    return True


def make_filter(labels: LabelSelector, fields: FieldSelector) -> Callable[[Obj], bool]:
    def accept(obj: Obj) -> bool:
        return labels_match(labels, (obj.get("metadata") or {}).get("labels")) and fields_match(fields, obj)

    return accept
