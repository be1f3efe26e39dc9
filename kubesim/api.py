"""Resource semantics: get, list, create, update, patch, apply, delete — the apiserver's registry
strategies in miniature, on top of :class:`kubesim.store.Store`.

Each call takes a :class:`Target` (resource type, namespace, name, subresource) and returns
``(http status, body)``; failures raise :class:`kubesim.errors.ApiError`. What it models:
uid/creationTimestamp/generation, resourceVersion preconditions (409 on a stale write), no-op
writes that keep the resourceVersion, status subresources (main-resource writes keep status,
``/status`` writes keep everything else), defaulting and validation (422), namespaces that must
exist and not be terminating, ``generateName``, ``dryRun=All``, finalizers and
``deletionTimestamp``, delete propagation (orphan here; background/foreground via the garbage
collector controller), server-side apply creating absent objects, and CRDs registering their
resources the moment they are written.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import random
import string
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubesim import errors, schemas, selectors, validation
from kubesim.defaults import ClusterIPAllocator, apply_defaults
from kubesim.discovery import ResourceRegistry, ResourceType
from kubesim.patch.apply import record_update, server_side_apply
from kubesim.patch.errors import ApplyConflict, PatchError
from kubesim.patch.schema import Schema, for_kind, from_crd
from kubesim.patching import APPLY_PATCH, apply_patch, conflict_error, parse_apply_body, patch_error
from kubesim.store import GR, Store, rv_of

Obj = dict[str, Any]
Response = tuple[int, Obj]

NAMESPACES: GR = ("", "namespaces")
CRDS: GR = ("apiextensions.k8s.io", "customresourcedefinitions")
SERVICE_ACCOUNTS: GR = ("", "serviceaccounts")
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# Metadata the server owns: a client's copy in an update body is ignored.
_SERVER_META = ("uid", "creationTimestamp", "generation", "deletionTimestamp", "deletionGracePeriodSeconds")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _undecodable_patch(exc: errors.ApiError, base: Obj) -> errors.ApiError:
    """A patch whose result does not decode as the kind is 422 Invalid on field ``patch``, as kube-apiserver
    answers; a malformed patch body, or unknown fields under strict validation, stay what they were."""
    message = str(exc.status().get("message", ""))
    if exc.code != 400 or "cannot be handled as a" not in message or "strict decoding error" in message:
        return exc
    shown = json.dumps(base, separators=(",", ":"))
    return errors.invalid("", "", [("patch", "FieldValueInvalid", f"Invalid value: {shown!r}: {message}")])


@dataclass(frozen=True)
class Target:
    rt: ResourceType
    namespace: str | None  # from the URL; None for cluster-scoped or all-namespaces requests
    name: str | None = None
    subresource: str | None = None

    @property
    def gr(self) -> GR:
        return self.rt.group, self.rt.plural


def _q(query: Mapping[str, str], key: str) -> str:
    return query.get(key, "") or ""


def _manager(query: Mapping[str, str]) -> str:
    """The field manager of an ordinary write: ``fieldManager``, else what the server derived from
    the User-Agent (``managerFromUserAgent``, set by the router), else "unknown"."""
    return _q(query, "fieldManager") or _q(query, "managerFromUserAgent") or "unknown"


def _strict(query: Mapping[str, str]) -> bool:
    return _q(query, "fieldValidation") == "Strict"


def is_true(value: str | None) -> bool:
    """A boolean query parameter as Go's strconv.ParseBool reads it (the Python client sends "True")."""
    return value in ("1", "t", "T", "true", "TRUE", "True")


def is_dry_run(query: Mapping[str, str]) -> bool:
    return _q(query, "dryRun") == "All"


def _spec_of(obj: Obj) -> Obj:
    """Everything the generation tracks: all but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _comparable(obj: Obj) -> Obj:
    """The object as a no-op check sees it: resourceVersion and managedFields timestamps aside (an
    ownership change is a change, a re-stamped but identical field set is not)."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "resourceVersion"}
    if isinstance(meta.get("managedFields"), list):
        meta["managedFields"] = [{k: v for k, v in e.items() if k != "time"} if isinstance(e, dict) else e
                                 for e in meta["managedFields"]]
    return {**obj, "metadata": meta}


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
CSA_MANAGER = "kubectl-client-side-apply"


def _last_applied_owns(live: Obj | None, conflict: ApplyConflict) -> bool:
    """The apiserver's hand-over from client-side to server-side apply: conflicts only with the
    client-side apply manager, on fields its last-applied-configuration names, are not conflicts."""
    text = (((live or {}).get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not text or not conflict.fields or any(manager != CSA_MANAGER for manager, _ in conflict.fields):
        return False
    try:
        last = json.loads(text)
    except ValueError:
        return False
    for _, path in conflict.fields:
        node: Any = last
        for part in path.strip(".").split("."):
            name = part.split("[", 1)[0]
            if not isinstance(node, dict) or name not in node:
                return False
            node = node[name]
            if "[" in part:  # a list item: the list itself being in last-applied is enough here
                break
    return True


_META_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str, "namespace": str, "generateName": str, "resourceVersion": str, "uid": str, "labels": dict,
    "annotations": dict, "finalizers": list, "ownerReferences": list, "managedFields": list,
    "generation": int, "creationTimestamp": (str, type(None)), "deletionTimestamp": (str, type(None)),
}


def _check_metadata_types(rt: ResourceType, meta: Any) -> None:
    """What the apiserver's decoder refuses before any validation runs: metadata of the wrong shape."""
    def fail(where: str, why: str) -> errors.ApiError:
        return errors.bad_request(f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                                  f"{where}: {why}")

    if meta is None:
        return
    if not isinstance(meta, dict):
        raise fail("metadata", "must be an object")
    for key, expected in _META_TYPES.items():
        if key in meta and meta[key] is not None and not isinstance(meta[key], expected):
            raise fail(f"metadata.{key}", "has the wrong type")
    for key in ("finalizers",):
        if any(not isinstance(v, str) for v in meta.get(key) or []):
            raise fail(f"metadata.{key}", "must be a list of strings")
    if any(not isinstance(v, dict) for v in meta.get("ownerReferences") or []):
        raise fail("metadata.ownerReferences", "must be a list of objects")


class ResourceAPI:
    def __init__(self, store: Store, registry: ResourceRegistry) -> None:
        self.store = store
        self.registry = registry
        self.ips = ClusterIPAllocator()
        for _, obj in store.all_objects():  # a restored state keeps its clusterIPs
            ip = (obj.get("spec") or {}).get("clusterIP") if obj.get("kind") == "Service" else None
            if ip and ip != "None":
                self.ips.reserve(ip)
            if obj.get("kind") == "CustomResourceDefinition":
                registry.set_crd(obj)

    def ensure_system_namespaces(self) -> None:
        for name in SYSTEM_NAMESPACES:
            if self.store.get(NAMESPACES, "", name) is None:
                rt = self.registry.lookup("", "v1", "namespaces")
                assert rt is not None
                self.create(Target(rt, None), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                            {"fieldManager": "kube-apiserver"})

    def schema(self, rt: ResourceType) -> Schema:
        """The structural schema patch/apply merge by: built-in definitions, or the CRD's own."""
        if rt.crd:
            crd = self.store.get(CRDS, "", f"{rt.plural}.{rt.group}")
            if crd is not None:
                return from_crd(crd, rt.version)
        return for_kind(rt.group_version, rt.kind)

    def _check_schema(self, rt: ResourceType, obj: Obj, query: Mapping[str, str]) -> Obj:
        """Structural validation: built-ins by their v1.35 schema, custom resources by their CRD's
        (which also prunes undeclared fields, as the apiserver does)."""
        if not rt.crd:
            schemas.check(obj, strict=_strict(query))
            return obj
        crd = self.store.get(CRDS, "", f"{rt.plural}.{rt.group}")
        return schemas.check_custom(obj, crd, rt.version, strict=_strict(query)) if crd else obj

    # --- reads -------------------------------------------------------------------------------

    def get(self, target: Target) -> Response:
        obj = self._existing(target)
        if target.subresource == "scale":
            return 200, self._scale_of(target.rt, obj)
        return 200, self._out(target.rt, obj)

    def list(self, target: Target, query: Mapping[str, str]) -> Response:
        accept = selectors.make_filter(
            selectors.parse_label_selector(_q(query, "labelSelector")),
            selectors.parse_field_selector(_q(query, "fieldSelector"), target.rt.group, target.rt.plural),
        )
        items, rv = self.store.list(target.gr, target.namespace, accept)
        meta: Obj = {"resourceVersion": str(rv)}
        cont = _q(query, "continue")
        if cont:
            try:
                start = json.loads(base64.urlsafe_b64decode(cont.encode()))
                start_key = (start["ns"], start["name"])
            except (ValueError, KeyError, TypeError) as exc:
                raise errors.bad_request("continue key is not valid: invalid continue token") from exc
            items = [o for o in items if ((o["metadata"].get("namespace") or ""), o["metadata"]["name"]) > start_key]
        limit = int(_q(query, "limit") or 0) if _q(query, "limit").isdigit() else 0
        if limit and len(items) > limit:
            last = items[limit - 1]["metadata"]
            token = {"ns": last.get("namespace") or "", "name": last["name"]}
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        out = [self._out(target.rt, o) for o in items]
        return 200, {"kind": target.rt.list_kind, "apiVersion": target.rt.group_version, "metadata": meta,
                     "items": out}

    def _existing(self, target: Target) -> Obj:
        obj = self.store.get(target.gr, target.namespace or "", target.name or "")
        if obj is None:
            raise errors.not_found(target.rt.plural, target.name or "", target.rt.group)
        return obj

    @staticmethod
    def _out(rt: ResourceType, obj: Obj) -> Obj:
        if obj.get("apiVersion") == rt.group_version and obj.get("kind") == rt.kind:
            return obj
        return {**obj, "apiVersion": rt.group_version, "kind": rt.kind}

    # --- create ------------------------------------------------------------------------------

    def create(self, target: Target, body: Any, query: Mapping[str, str]) -> Response:
        obj = self._check_body(target, body)
        if target.name:
            raise errors.method_not_allowed("the server does not allow this method on the requested resource")
        if target.rt.group == "authorization.k8s.io":
            return 201, self._review(obj)
        return self._create(target, obj, query, manager=_manager(query))

    @staticmethod
    def _review(review: Obj) -> Obj:
        """No authorization here: every access review is allowed (and nothing is stored)."""
        if review["kind"] == "SelfSubjectRulesReview":
            review["status"] = {"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                                "incomplete": False}
        else:
            review["status"] = {"allowed": True, "reason": "kubesim allows every request"}
        return review

    def _create(self, target: Target, obj: Obj, query: Mapping[str, str], *, manager: str | None) -> Response:
        """``manager``: the field manager of an ordinary write (None: an apply, managedFields are set)."""
        rt = target.rt
        meta = obj.setdefault("metadata", {})
        self._place(target, obj)
        if not meta.get("name"):
            if meta.get("generateName"):
                suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
                meta["name"] = f"{meta['generateName']}{suffix}"
            else:
                raise errors.invalid(rt.kind, "", [("metadata.name", "FieldValueRequired",
                                                    "Required value: name or generateName is required")], rt.group)
        if rt.namespaced:
            self._check_namespace(meta["namespace"])
        obj = self._check_schema(rt, obj, query)
        meta = obj["metadata"]
        for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        if rt.has_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if "status" in rt.subresources and rt.kind not in ("Namespace",):
            obj.pop("status", None)
        apply_defaults(rt.group, rt.kind, obj, None, self.ips)
        if manager is not None:
            obj = record_update(None, obj, manager, schema=self.schema(rt))
        self._validate(rt, obj, None)
        if rt.kind == "CustomResourceDefinition":
            self._crd_status(obj)
        if is_dry_run(query):
            return 201, obj
        self.store.create(target.gr, obj)
        if rt.kind == "CustomResourceDefinition":
            self.registry.set_crd(obj)
        if rt.kind == "Namespace":
            self._default_service_account(meta["name"])
        return 201, obj

    def _default_service_account(self, namespace: str) -> None:
        """The ``default`` ServiceAccount the service-account controller puts in every new namespace (pods
        without a ``serviceAccountName`` run as it)."""
        sa = {"apiVersion": "v1", "kind": "ServiceAccount",
              "metadata": {"name": "default", "namespace": namespace, "uid": str(uuid.uuid4()),
                           "creationTimestamp": now()}}
        with contextlib.suppress(errors.ApiError):  # restored from a state file, or a client's own
            self.store.create(SERVICE_ACCOUNTS, record_update(None, sa, "kube-controller-manager"))

    def _place(self, target: Target, obj: Obj) -> None:
        """Namespace of the body vs the URL, as the apiserver checks it."""
        meta = obj["metadata"]
        if target.rt.namespaced:
            url_ns = target.namespace or ""
            body_ns = meta.get("namespace") or ""
            if body_ns and url_ns and body_ns != url_ns:
                raise errors.bad_request("the namespace of the provided object does not match the namespace sent "
                                         "on the request")
            if not url_ns:
                raise errors.bad_request("the namespace of the object is required for a namespaced resource")
            meta["namespace"] = url_ns
        else:
            meta.pop("namespace", None)

    def _check_namespace(self, name: str) -> None:
        ns = self.store.get(NAMESPACES, "", name)
        if ns is None:
            raise errors.not_found("namespaces", name)
        if (ns.get("metadata") or {}).get("deletionTimestamp"):
            raise errors.ApiError(403, "Forbidden", f"unable to create new content in namespace {name} because it is "
                                  "being terminated", {"name": name, "kind": "namespaces"})

    def _check_body(self, target: Target, body: Any) -> Obj:
        rt = target.rt
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        # Like the apiserver, a body without apiVersion/kind takes them from the URL (the Python
        # client sends none); a body that names another kind or version is refused.
        if body.get("apiVersion") and body["apiVersion"] != rt.group_version:
            raise errors.bad_request(f"the API version in the data ({body['apiVersion']}) does not match the "
                                     f"expected API version ({rt.group_version})")
        if body.get("kind") and body["kind"] != rt.kind:
            raise errors.bad_request(f"the kind in the data ({body['kind']}) does not match the expected kind "
                                     f"({rt.kind})")
        _check_metadata_types(rt, body.get("metadata"))
        obj = copy.deepcopy(body)
        if obj.get("metadata") is None:
            obj["metadata"] = {}
        obj["apiVersion"] = rt.group_version
        obj["kind"] = rt.kind
        return obj

    def _validate(self, rt: ResourceType, obj: Obj, old: Obj | None) -> None:
        causes = validation.object_causes(rt.kind, obj) if old is None else validation.update_causes(rt.kind, old,
                                                                                                       obj)
        if causes:
            raise errors.invalid(rt.kind, obj["metadata"].get("name", ""), causes, rt.group)

    @staticmethod
    def _crd_status(crd: Obj) -> None:
        spec = crd.get("spec") or {}
        stamp = now()
        crd["status"] = {
            "acceptedNames": spec.get("names") or {},
            "storedVersions": [v["name"] for v in spec.get("versions") or [] if v.get("storage")],
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": stamp},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted", "lastTransitionTime": stamp},
            ],
        }

    # --- update ------------------------------------------------------------------------------

    def update(self, target: Target, body: Any, query: Mapping[str, str]) -> Response:
        obj = self._check_body(target, body)
        old = self._existing(target)
        return self._update(target, old, obj, query, manager=_manager(query))

    def _update(self, target: Target, old: Obj, new: Obj, query: Mapping[str, str], *,
                manager: str | None) -> Response:
        rt = target.rt
        meta = new.setdefault("metadata", {})
        old_meta = old["metadata"]
        if meta.get("name") and meta["name"] != old_meta["name"]:
            raise errors.bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL "
                                     f"({old_meta['name']})")
        meta["name"] = old_meta["name"]
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != old_meta.get("namespace"):
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on "
                                     "the request")
        self._place(target, new)
        body_rv = meta.get("resourceVersion")
        if body_rv and str(body_rv) != old_meta.get("resourceVersion"):
            raise errors.conflict(rt.plural, old_meta["name"], rt.group)
        for key in _SERVER_META:
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        if target.subresource == "status":
            new = {**copy.deepcopy({k: v for k, v in old.items() if k != "status"}), "status": new.get("status")}
            if new["status"] is None:
                del new["status"]
        elif "status" in rt.subresources:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        new = self._check_schema(rt, new, query)
        apply_defaults(rt.group, rt.kind, new, old, self.ips)
        if manager is not None:
            new = record_update(old, new, manager, schema=self.schema(rt), subresource=target.subresource or "")
        self._validate(rt, new, old)
        if rt.has_generation and (_spec_of(new) != _spec_of(old) or (
                # the Deployment strategy also counts annotations: its controller copies them to ReplicaSets
                rt.kind == "Deployment" and new["metadata"].get("annotations") != old_meta.get("annotations"))):
            new["metadata"]["generation"] = int(old_meta.get("generation") or 0) + 1
        if rt.kind == "CustomResourceDefinition":
            self._crd_status(new)
        if _comparable(new) == _comparable(old):
            return 200, old  # a no-op write changes nothing, not even the resourceVersion
        finalizing = new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers")
        if is_dry_run(query):
            return 200, new
        if finalizing:  # the last finalizer is gone: the object goes away now
            return 200, self.store.delete(target.gr, old_meta.get("namespace") or "", old_meta["name"])
        self.store.update(target.gr, new, expected_rv=rv_of(old))
        if rt.kind == "CustomResourceDefinition":
            self.registry.set_crd(new)
        return 200, new

    # --- patch / apply -------------------------------------------------------------------------

    def patch(self, target: Target, content_type: str, body: bytes, query: Mapping[str, str]) -> Response:
        if content_type == APPLY_PATCH:
            return self._apply(target, body, query)
        for attempt in range(5):  # GuaranteedUpdate: retry when a concurrent write raced us
            old = self._existing(target)
            base = old if target.subresource != "scale" else self._scale_of(target.rt, old)
            schema = None if target.subresource == "scale" else self.schema(target.rt)
            try:
                patched = apply_patch(content_type, base, body, schema=schema, crd=target.rt.crd)
                if target.subresource == "scale":
                    patched = self._from_scale(old, patched)
                patched = self._check_body(target, patched)
            except errors.ApiError as exc:
                if (converted := _undecodable_patch(exc, base)) is exc:
                    raise
                raise converted from exc
            try:
                code, updated = self._update(target, old, patched, query, manager=_manager(query))
                return (code, self._scale_of(target.rt, updated)) if target.subresource == "scale" else (code, updated)
            except errors.ApiError as exc:
                # Retry only our own read-modify-write race, never a precondition the patch carried.
                patched_rv = (patched.get("metadata") or {}).get("resourceVersion")
                if exc.reason != "Conflict" or attempt == 4 or patched_rv != old["metadata"].get("resourceVersion"):
                    if (converted := _undecodable_patch(exc, patched)) is exc:
                        raise
                    raise converted from exc
        raise AssertionError("unreachable")

    def _apply(self, target: Target, body: bytes, query: Mapping[str, str]) -> Response:
        rt = target.rt
        manager = _q(query, "fieldManager")
        if not manager:
            raise errors.invalid("PatchOptions", "", [("fieldManager", "FieldValueRequired",
                                                        "Required value: is required for apply patch")],
                                 group="meta.k8s.io")
        applied = self._check_body(target, parse_apply_body(body))
        name = (applied.get("metadata") or {}).get("name")
        if name != target.name:
            raise errors.bad_request(f"the name of the object ({name}) does not match the name on the URL "
                                     f"({target.name})")
        force = is_true(query.get("force"))
        schema = self.schema(rt)
        for attempt in range(5):
            live = self.store.get(target.gr, target.namespace or "", target.name or "")
            try:
                merged = server_side_apply(live, applied, manager, force, schema=schema)
            except ApplyConflict as exc:
                if not _last_applied_owns(live, exc):
                    raise conflict_error(exc, rt.plural, target.name or "", rt.group) from exc
                merged = server_side_apply(live, applied, manager, True, schema=schema)
            except PatchError as exc:
                raise patch_error(exc) from exc
            try:
                if live is None:
                    if target.subresource:
                        raise errors.not_found(rt.plural, target.name or "", rt.group)
                    return self._create(target, merged, query, manager=None)
                return self._update(target, live, merged, query, manager=None)
            except errors.ApiError as exc:
                if exc.reason not in ("Conflict", "AlreadyExists") or attempt == 4 or \
                        (applied.get("metadata") or {}).get("resourceVersion"):
                    raise
        raise AssertionError("unreachable")

    # --- scale subresource -----------------------------------------------------------------------

    @staticmethod
    def _scale_of(rt: ResourceType, obj: Obj) -> Obj:
        meta = obj["metadata"]
        selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                             if k in meta},
                "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
                "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                           "selector": ",".join(f"{k}={v}" for k, v in selector.items())}}

    @staticmethod
    def _from_scale(old: Obj, scale: Any) -> Obj:
        spec = scale.get("spec") if isinstance(scale, dict) else None
        meta = scale.get("metadata") if isinstance(scale, dict) else None
        replicas = (spec or {}).get("replicas", 0) if isinstance(spec, dict | None) else None
        if not isinstance(meta, dict | None) or not isinstance(replicas, int) or replicas < 0:
            raise errors.bad_request("Scale in version \"v1\" cannot be handled as a Scale: spec.replicas must be "
                                     "a non-negative integer")
        new = copy.deepcopy(old)
        new["spec"]["replicas"] = replicas
        new["metadata"]["resourceVersion"] = (meta or {}).get("resourceVersion")
        return new

    def update_scale(self, target: Target, body: Any, query: Mapping[str, str]) -> Response:
        old = self._existing(target)
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        main = Target(target.rt, target.namespace, target.name)
        self._update(main, old, self._from_scale(old, body), query, manager=_manager(query))
        return self.get(target)

    # --- delete ------------------------------------------------------------------------------

    def delete(self, target: Target, options: Obj, query: Mapping[str, str]) -> Response:
        obj = self._existing(target)
        meta = obj["metadata"]
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise errors.conflict(target.rt.plural, meta["name"], target.rt.group,
                                  f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                                  f"{meta.get('uid')}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
            raise errors.conflict(target.rt.plural, meta["name"], target.rt.group,
                                  f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                                  f"ResourceVersion in object meta: {meta.get('resourceVersion')}")
        dry_run = is_dry_run(query) or "All" in (options.get("dryRun") or [])
        policy = options.get("propagationPolicy") or _q(query, "propagationPolicy")
        if not policy and options.get("orphanDependents") is True:
            policy = "Orphan"
        if not policy and (target.rt.group, target.rt.plural) == ("batch", "jobs"):
            policy = "Orphan"  # batch/v1 Jobs keep their legacy default: Pods outlive a plain delete
        if dry_run:
            return 200, obj
        if target.rt.kind == "Namespace":
            return 200, self._terminate_namespace(target, obj)
        finalizers = list(meta.get("finalizers") or [])
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if policy == "Orphan":
            self.orphan_dependents(meta.get("uid", ""))
        # 200 with the object, as kube-apiserver answers a deletion its finalizers hold (202 is only for
        # the legacy orphanDependents=false, which no client we serve sends).
        if finalizers:
            if meta.get("deletionTimestamp") and finalizers == meta.get("finalizers"):
                return 200, obj
            new = copy.deepcopy(obj)
            new["metadata"]["finalizers"] = finalizers
            new["metadata"].setdefault("deletionTimestamp", now())
            new["metadata"].setdefault("deletionGracePeriodSeconds", 0)
            self.store.update(target.gr, new, expected_rv=rv_of(obj))
            return 200, new
        return 200, self.store.delete(target.gr, target.namespace or "", meta["name"])

    def _terminate_namespace(self, target: Target, ns: Obj) -> Obj:
        if ns["metadata"]["name"] in SYSTEM_NAMESPACES:
            raise errors.ApiError(403, "Forbidden", f'namespaces "{ns["metadata"]["name"]}" is forbidden: this '
                                  "namespace may not be deleted", {"name": ns["metadata"]["name"],
                                                                    "kind": "namespaces"})
        if ns["metadata"].get("deletionTimestamp"):
            return ns
        new = copy.deepcopy(ns)
        new["metadata"]["deletionTimestamp"] = now()
        new["metadata"]["deletionGracePeriodSeconds"] = 0
        new.setdefault("status", {})["phase"] = "Terminating"
        self.store.update(target.gr, new, expected_rv=rv_of(ns))
        return new

    def delete_collection(self, target: Target, options: Obj, query: Mapping[str, str]) -> Response:
        _, listed = self.list(target, {k: v for k, v in query.items() if k in ("labelSelector", "fieldSelector")})
        deleted = []
        for item in listed["items"]:
            meta = item["metadata"]
            try:
                _, gone = self.delete(Target(target.rt, meta.get("namespace"), meta["name"]), options, query)
            except errors.ApiError as exc:
                if exc.code != 404:
                    raise
                continue
            deleted.append(gone)
        return 200, {"kind": target.rt.list_kind, "apiVersion": target.rt.group_version,
                     "metadata": {"resourceVersion": str(self.store.resource_version)}, "items": deleted}

    def orphan_dependents(self, owner_uid: str) -> None:
        for gr, obj in self.store.all_objects():
            refs = obj["metadata"].get("ownerReferences") or []
            if any(r.get("uid") == owner_uid for r in refs):
                new = copy.deepcopy(obj)
                new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != owner_uid]
                if not new["metadata"]["ownerReferences"]:
                    del new["metadata"]["ownerReferences"]
                try:
                    self.store.update(gr, new, expected_rv=rv_of(obj))
                except errors.ApiError:
                    continue
