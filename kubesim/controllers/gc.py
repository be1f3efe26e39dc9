"""Garbage collection and namespace/CRD finalization, driven by store events.

- An object deleted with the default (background) propagation takes its dependents (objects
  whose ``ownerReferences`` name its uid) with it, shortly after, as the real garbage collector.
- ``foregroundDeletion``: dependents are deleted first, then the finalizer is removed and the owner
  goes away.
- A Namespace marked for deletion (phase Terminating) loses all its content, then disappears.
- A deleted CustomResourceDefinition stops serving its resource and its custom objects are removed.

Work runs on the server's event loop (``call_soon``), never inside the writer's request.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubesim import errors
from kubesim.discovery import ResourceRegistry
from kubesim.store import GR, Event, Store, key_of, rv_of

Obj = dict[str, Any]
Ref = tuple[GR, str, str]
NAMESPACES: GR = ("", "namespaces")
CRDS: GR = ("apiextensions.k8s.io", "customresourcedefinitions")


@dataclass
class GarbageCollector:
    store: Store
    registry: ResourceRegistry
    loop: asyncio.AbstractEventLoop | None = None
    _dependents: dict[str, set[Ref]] = field(default_factory=dict)  # owner uid -> dependents
    # Writers on any thread (the server loop, an in-process test) update the index.
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        for gr, obj in self.store.all_objects():
            self._index(gr, obj, None)
        self.store.subscribe(self._on_event)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        for gr, obj in self.store.all_objects():  # finish deletions a restart interrupted
            if (obj.get("metadata") or {}).get("deletionTimestamp"):
                loop.call_soon_threadsafe(self._finalize, gr, obj)

    def stop(self) -> None:
        self.loop = None

    def _index(self, gr: GR, obj: Obj | None, old: Obj | None) -> None:
        with self._lock:
            self._index_locked(gr, obj, old)

    def _index_locked(self, gr: GR, obj: Obj | None, old: Obj | None) -> None:
        for source, add in ((old, False), (obj, True)):
            if source is None:
                continue
            meta = source.get("metadata") or {}
            ref = (gr, meta.get("namespace") or "", meta.get("name") or "")
            for owner in meta.get("ownerReferences") or []:
                uid = owner.get("uid")
                if not uid:
                    continue
                if add:
                    self._dependents.setdefault(uid, set()).add(ref)
                else:
                    self._dependents.get(uid, set()).discard(ref)

    def _on_event(self, event: Event) -> None:
        self._index(event.gr, None if event.type == "DELETED" else event.obj, event.old)
        meta = event.obj.get("metadata") or {}
        if event.type == "DELETED":
            self._later(self._collect, event.gr, event.obj)
        elif meta.get("deletionTimestamp"):
            self._later(self._finalize, event.gr, event.obj)

    def _later(self, fn: Callable[[GR, Obj], None], gr: GR, obj: Obj) -> None:
        if self.loop is None:
            fn(gr, obj)
            return
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(fn, gr, obj)

    def _take_dependents(self, uid: str) -> set[Ref]:
        with self._lock:
            return self._dependents.pop(uid, set())

    def _delete_refs(self, refs: set[Ref] | list[Ref]) -> None:
        for gr, namespace, name in list(refs):
            try:
                self.store.delete(gr, namespace, name)
            except errors.ApiError:
                continue

    def _collect(self, gr: GR, obj: Obj) -> None:
        """An object is gone: its dependents go too; a CRD takes its custom resources along."""
        uid = (obj.get("metadata") or {}).get("uid", "")
        self._delete_refs(self._take_dependents(uid))
        if gr == CRDS:
            spec = obj.get("spec") or {}
            cr_gr = (spec.get("group", ""), (spec.get("names") or {}).get("plural", ""))
            items, _ = self.store.list(cr_gr)
            self._delete_refs([(cr_gr, *key_of(o)) for o in items])
            self.registry.remove_crd(obj)

    def _finalize(self, gr: GR, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        live = self.store.get(gr, meta.get("namespace") or "", meta.get("name") or "")
        if live is None or rv_of(live) != rv_of(obj):
            return
        if gr == NAMESPACES:
            namespace = meta["name"]
            for content_gr in self.store.resources():
                if content_gr == NAMESPACES:
                    continue
                items, _ = self.store.list(content_gr, namespace)
                self._delete_refs([(content_gr, *key_of(o)) for o in items])
            self._delete_refs([(gr, "", namespace)])
            return
        finalizers = list(meta.get("finalizers") or [])
        if "foregroundDeletion" in finalizers:
            self._delete_refs(self._take_dependents(meta.get("uid", "")))
            finalizers.remove("foregroundDeletion")
            new = copy.deepcopy(live)
            new["metadata"]["finalizers"] = finalizers
            if finalizers:
                self.store.update(gr, new, expected_rv=rv_of(live))
            else:
                self.store.delete(gr, meta.get("namespace") or "", meta["name"])
