"""Object validation with the apiserver's wording: each rule returns ``(field, type, message)``
causes, which the API turns into one 422 Invalid ``Status``.

Covers what clients trip over in practice: object names (RFC 1123 subdomain or label, or path
segment names for RBAC), label keys/values, ConfigMap/Secret keys, the Deployment/StatefulSet/
DaemonSet/ReplicaSet selector-vs-template rule, required containers, and immutable fields on
update (Job pod templates, workload selectors, Service clusterIP, immutable ConfigMaps/Secrets).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kubesim.selectors import labels_match, selector_from_object

Obj = dict[str, Any]
Cause = tuple[str, str, str]

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")

SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                 "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                 "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
             "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
             "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")

# Kinds whose names must be DNS labels (the rest are subdomains, or path segments for RBAC).
_LABEL_NAMED = {"Namespace", "Service"}
_PATH_SEGMENT_NAMED = {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}


def name_causes(kind: str, name: str, field: str = "metadata.name") -> list[Cause]:
    if kind in _PATH_SEGMENT_NAMED:
        if name in (".", "..") or "/" in name or "%" in name:
            return [(field, "FieldValueInvalid", f'Invalid value: "{name}": may not contain \'/\' or \'%\'')]
        return []
    if kind in _LABEL_NAMED:
        if len(name) > 63:
            return [(field, "FieldValueInvalid", f'Invalid value: "{name}": must be no more than 63 characters')]
        if not _LABEL.match(name):
            return [(field, "FieldValueInvalid", f'Invalid value: "{name}": {LABEL_MSG}')]
        return []
    if len(name) > 253:
        return [(field, "FieldValueInvalid", f'Invalid value: "{name}": must be no more than 253 characters')]
    if not _SUBDOMAIN.match(name):
        return [(field, "FieldValueInvalid", f'Invalid value: "{name}": {SUBDOMAIN_MSG}')]
    return []


def _label_causes(labels: Any, field: str) -> list[Cause]:
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [(field, "FieldValueInvalid", "Invalid value: must be a map of strings")]
    causes: list[Cause] = []
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if (prefix and not _SUBDOMAIN.match(prefix)) or len(name) > 63 or not _QUALIFIED.match(name):
            causes.append((field, "FieldValueInvalid", f'Invalid value: "{key}": name part must consist of '
                           "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                           "alphanumeric character"))
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append((f"{field}", "FieldValueInvalid", f'Invalid value: "{value}": a valid label must be '
                           "an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
                           "start and end with an alphanumeric character"))
    return causes


def metadata_causes(kind: str, obj: Obj) -> list[Cause]:
    meta = obj.get("metadata") or {}
    causes = name_causes(kind, str(meta.get("name", "")))
    causes += _label_causes(meta.get("labels"), "metadata.labels")
    annotations = meta.get("annotations")
    if annotations is not None and (not isinstance(annotations, dict)
                                    or not all(isinstance(v, str) for v in annotations.values())):
        causes.append(("metadata.annotations", "FieldValueInvalid", "Invalid value: values must be strings"))
    elif annotations and sum(len(k) + len(v) for k, v in annotations.items()) > 256 * 1024:
        causes.append(("metadata.annotations", "FieldValueTooLong", "Too long: must have at most 262144 bytes"))
    return causes


def _dig(obj: Obj, *path: str) -> Any:
    node: Any = obj
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


MAX_DATA_BYTES = 1024 * 1024  # the apiserver's limit on a ConfigMap's or Secret's payload


def _data_size(obj: Obj) -> int:
    total = 0
    secret = obj.get("kind") == "Secret"
    for section in ("data", "binaryData"):
        for key, value in (obj.get(section) or {}).items() if isinstance(obj.get(section), dict) else ():
            text = value if isinstance(value, str) else ""
            # base64 values count by their decoded size (Secret data, ConfigMap binaryData)
            encoded = secret or section == "binaryData"
            total += len(key) + (len(text) * 3 // 4 if encoded else len(text.encode()))
    return total


def _data_keys(obj: Obj) -> list[Cause]:
    causes: list[Cause] = []
    if _data_size(obj) > MAX_DATA_BYTES:
        causes.append(("data", "FieldValueTooLong", f"Too long: must have at most {MAX_DATA_BYTES} bytes"))
    for section in ("data", "binaryData", "stringData"):
        block = obj.get(section)
        if block is None:
            continue
        if not isinstance(block, dict):
            causes.append((section, "FieldValueInvalid", "Invalid value: must be a map"))
            continue
        for key in block:
            if not _CONFIG_KEY.match(key) or len(key) > 253:
                causes.append((f"{section}[{key}]", "FieldValueInvalid", f'Invalid value: "{key}": a valid '
                               "config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
                               "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
                               "'[-._a-zA-Z0-9]+')"))
    return causes


def _pod_template(template: Any, field: str) -> list[Cause]:
    containers = _dig(template or {}, "spec", "containers")
    if not containers:
        return [(f"{field}.spec.containers", "FieldValueRequired", "Required value")]
    causes: list[Cause] = []
    for i, container in enumerate(containers):
        if not isinstance(container, dict):
            causes.append((f"{field}.spec.containers[{i}]", "FieldValueInvalid", "Invalid value: must be an object"))
            continue
        if not container.get("name"):
            causes.append((f"{field}.spec.containers[{i}].name", "FieldValueRequired", "Required value"))
        if not container.get("image"):
            causes.append((f"{field}.spec.containers[{i}].image", "FieldValueRequired", "Required value"))
    return causes


def _workload(obj: Obj) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    selector = selector_from_object(spec.get("selector"))
    if spec.get("selector") is None:
        causes.append(("spec.selector", "FieldValueRequired", "Required value"))
    elif not spec["selector"].get("matchLabels") and not spec["selector"].get("matchExpressions"):
        causes.append(("spec.selector", "FieldValueInvalid", "Invalid value: empty selector is invalid for "
                       "deployment"))
    elif selector is not None and not labels_match(selector, _dig(spec, "template", "metadata", "labels")):
        causes.append(("spec.template.metadata.labels", "FieldValueInvalid",
                       "Invalid value: `selector` does not match template `labels`"))
    causes += _pod_template(spec.get("template"), "spec.template")
    replicas = spec.get("replicas")
    if replicas is not None and (not isinstance(replicas, int) or replicas < 0):
        causes.append(("spec.replicas", "FieldValueInvalid",
                       f"Invalid value: {replicas}: must be greater than or equal to 0"))
    return causes


def _job(obj: Obj) -> list[Cause]:
    return _pod_template(_dig(obj, "spec", "template"), "spec.template")


def _service(obj: Obj) -> list[Cause]:
    spec = obj.get("spec") or {}
    if spec.get("type") == "ExternalName" or spec.get("clusterIP") == "None" or spec.get("ports"):
        return []
    return [("spec.ports", "FieldValueRequired", "Required value")]


def _crd(obj: Obj) -> list[Cause]:
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    causes: list[Cause] = []
    for key in ("plural", "kind"):
        if not names.get(key):
            causes.append((f"spec.names.{key}", "FieldValueRequired", "Required value"))
    if not spec.get("group"):
        causes.append(("spec.group", "FieldValueRequired", "Required value"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(("spec.scope", "FieldValueNotSupported",
                       f'Unsupported value: "{spec.get("scope", "")}": supported values: "Cluster", "Namespaced"'))
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        causes.append(("spec.versions", "FieldValueInvalid", "Invalid value: must have exactly one version marked "
                       "as storage version"))
    else:
        if sum(1 for v in versions if isinstance(v, dict) and v.get("storage")) != 1:
            causes.append(("spec.versions", "FieldValueInvalid", "Invalid value: must have exactly one version "
                           "marked as storage version"))
        for i, version in enumerate(versions):
            if not isinstance(version, dict) or not version.get("name"):
                causes.append((f"spec.versions[{i}].name", "FieldValueRequired", "Required value"))
    name = (obj.get("metadata") or {}).get("name", "")
    expected = f"{names.get('plural', '')}.{spec.get('group', '')}"
    if names.get("plural") and spec.get("group") and name != expected:
        causes.append(("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": must be spec.names.plural+'
                       '"."+spec.group'))
    return causes


_CREATE_RULES: dict[str, Callable[[Obj], list[Cause]]] = {
    "ConfigMap": _data_keys,
    "Secret": _data_keys,
    "Deployment": _workload,
    "StatefulSet": _workload,
    "DaemonSet": _workload,
    "ReplicaSet": _workload,
    "Job": _job,
    "Service": _service,
    "CustomResourceDefinition": _crd,
}

# (kind, path to a field that may not change once set)
_IMMUTABLE: dict[str, tuple[tuple[str, ...], ...]] = {
    "Job": (("spec", "template"), ("spec", "selector"), ("spec", "completions")),
    "Deployment": (("spec", "selector"),),
    "StatefulSet": (("spec", "selector"), ("spec", "serviceName"), ("spec", "volumeClaimTemplates")),
    "DaemonSet": (("spec", "selector"),),
    "ReplicaSet": (("spec", "selector"),),
    "Service": (("spec", "clusterIP"),),
    "PersistentVolumeClaim": (("spec", "storageClassName"), ("spec", "volumeName")),
}


def object_causes(kind: str, obj: Obj) -> list[Cause]:
    causes = metadata_causes(kind, obj)
    rule = _CREATE_RULES.get(kind)
    if rule is not None:
        causes += rule(obj)
    return causes


def update_causes(kind: str, old: Obj, new: Obj) -> list[Cause]:
    causes = object_causes(kind, new)
    for path in _IMMUTABLE.get(kind, ()):
        before, after = _dig(old, *path), _dig(new, *path)
        if before is not None and before != after:
            causes.append((".".join(path), "FieldValueInvalid", "Invalid value: field is immutable"))
    if kind in ("ConfigMap", "Secret") and old.get("immutable") is True:
        for section in ("data", "binaryData", "immutable"):
            if old.get(section) != new.get(section):
                causes.append((section, "FieldValueForbidden",
                               "Forbidden: field is immutable when `immutable` is set"))
    return causes
