"""The bootstrap ServiceAccount's objects, taken from the chart's own render (pure: no I/O).

A step that writes through the Kubernetes API (keystone's fernet-setup / credential-setup create the key
Secrets the API pods mount) needs the ServiceAccount `values.bootstrap.serviceAccount` and the Role/RoleBinding
that grant it exactly that. The chart renders them, but on a first install the chart's objects exist only
after `helm upgrade --install --wait`, and `--wait` cannot succeed while the pods lack their keys. So, ahead
of the `before` steps, the engine creates these three kinds of objects itself, exactly as the chart renders
them plus Helm's ownership metadata: the install then adopts them into the release (Helm takes over an
existing object whose `meta.helm.sh/release-{name,namespace}` annotations name the release being installed).
The chart stays the one place their rules are written; helm upgrades, rolls back and uninstalls them as
usual afterwards.

Only namespaced objects are taken: the ServiceAccount itself, every RoleBinding in the release's namespace
whose subjects name it, and the Roles those bindings refer to. Nothing cluster-scoped (a ClusterRole or
ClusterRoleBinding stays the chart's, created by helm), so the manager needs no more rights than a chart's
namespaced RBAC already requires of it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

Obj = dict[str, Any]

RBAC_API = "rbac.authorization.k8s.io/v1"
HELM_MANAGED_BY = {"app.kubernetes.io/managed-by": "Helm"}
HELM_RELEASE_NAME = "meta.helm.sh/release-name"
HELM_RELEASE_NAMESPACE = "meta.helm.sh/release-namespace"
# The order they are created in: a binding's subject and role exist before the binding.
KIND_ORDER = ("ServiceAccount", "Role", "RoleBinding")


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _in_namespace(obj: Mapping[str, Any], namespace: str) -> bool:
    # `helm template` leaves metadata.namespace out unless the chart writes it: absent means the release's.
    return str(_meta(obj).get("namespace") or namespace) == namespace


def _binds(binding: Mapping[str, Any], account: str, namespace: str) -> bool:
    for subject in binding.get("subjects") or []:
        if not isinstance(subject, Mapping) or subject.get("kind") != "ServiceAccount":
            continue
        if subject.get("name") == account and str(subject.get("namespace") or namespace) == namespace:
            return True
    return False


def bootstrap_objects(docs: Iterable[Any], account: str, *, release: str, namespace: str) -> list[Obj]:
    """The rendered ServiceAccount `account`, the RoleBindings binding it and their Roles, ready to create.

    Empty when the chart does not render the ServiceAccount (its steps then run as it only `after` the
    install, as before). Each object carries Helm's ownership metadata for `release` and its namespace.
    """
    rendered = [d for d in docs if isinstance(d, Mapping) and _in_namespace(d, namespace)]
    accounts = [d for d in rendered if d.get("kind") == "ServiceAccount" and _meta(d).get("name") == account]
    if not accounts:
        return []
    bindings = [
        d
        for d in rendered
        if d.get("kind") == "RoleBinding"
        and d.get("apiVersion") == RBAC_API
        and (d.get("roleRef") or {}).get("kind") == "Role"
        and _binds(d, account, namespace)
    ]
    wanted_roles = {str((b.get("roleRef") or {}).get("name")) for b in bindings}
    roles = [
        d
        for d in rendered
        if d.get("kind") == "Role" and d.get("apiVersion") == RBAC_API and _meta(d).get("name") in wanted_roles
    ]
    picked = [accounts[0], *roles, *bindings]
    picked.sort(key=lambda d: (KIND_ORDER.index(str(d.get("kind"))), str(_meta(d).get("name"))))
    return [adoptable(d, release=release, namespace=namespace) for d in picked]


def adoptable(obj: Mapping[str, Any], *, release: str, namespace: str) -> Obj:
    """A copy of a rendered object with the metadata Helm checks before adopting an existing object."""
    body: Obj = copy.deepcopy(dict(obj))
    meta = dict(body.get("metadata") or {})
    meta["namespace"] = namespace
    meta["labels"] = {**(meta.get("labels") or {}), **HELM_MANAGED_BY}
    meta["annotations"] = {
        **(meta.get("annotations") or {}),
        HELM_RELEASE_NAME: release,
        HELM_RELEASE_NAMESPACE: namespace,
    }
    body["metadata"] = meta
    return body


def differs(live: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether a live Role/RoleBinding grants other than the render says (its rules or subjects).

    A ServiceAccount never differs in a way the steps care about; a RoleBinding's roleRef cannot change
    (the API refuses), so a changed roleRef is helm's to replace at the install.
    """
    kind = wanted.get("kind")
    if kind == "Role":
        return (live.get("rules") or []) != (wanted.get("rules") or [])
    if kind == "RoleBinding":
        return (live.get("subjects") or []) != (wanted.get("subjects") or [])
    return False
