"""The object store: every object the sandbox holds, one resourceVersion counter, watch fan-out.

Objects are keyed by (group, resource) then (namespace, name); the version is not part of the key
because one object is served in every version of its resource (the apiVersion is the caller's
concern). Every write takes the next value of the single resourceVersion counter, is appended to
a bounded event log (so a watch can resume from a resourceVersion, or get 410 Gone when it is too
old), and is fanned out to watchers (asyncio queues, fed thread-safely) and to subscribers
(controllers, persistence), which run after the lock is released.

Stored dicts are shared, never copied on read: callers must not mutate what they get back, and
must pass in fresh dicts on write. Thread-safe; all methods are cheap and non-blocking.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kubesim import errors

Obj = dict[str, Any]
GR = tuple[str, str]  # (group, plural)
Key = tuple[str, str]  # (namespace, name); namespace is "" for cluster-scoped objects


@dataclass(frozen=True)
class Event:
    rv: int
    gr: GR
    type: str  # ADDED | MODIFIED | DELETED
    obj: Obj
    old: Obj | None = None


def key_of(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


def rv_of(obj: Obj) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


@dataclass
class Watcher:
    """One open watch: events matching (gr, namespace, accept) are queued on its loop."""

    gr: GR
    namespace: str | None
    accept: Callable[[Obj], bool]
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)

    def wants(self, event: Event) -> bool:
        if event.gr != self.gr:
            return False
        return self.namespace is None or key_of(event.obj)[0] == self.namespace

    def push(self, event: Event | None) -> None:
        with contextlib.suppress(RuntimeError):  # loop closed: the client is gone
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)


class Store:
    # The log keeps old object versions alive: 5 000 events bound memory (release Secrets can be large)
    # while covering any realistic watch reconnect gap; older resourceVersions get 410 Gone.
    def __init__(self, event_log_size: int = 5_000) -> None:
        self._lock = threading.RLock()
        self._objects: dict[GR, dict[Key, Obj]] = {}
        self._rv = 0
        self._log: deque[Event] = deque(maxlen=event_log_size)
        self._log_floor = 0  # highest resourceVersion no longer in the log
        self._watchers: list[Watcher] = []
        self._subscribers: list[Callable[[Event], None]] = []

    # --- reads -------------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._rv

    def get(self, gr: GR, namespace: str, name: str) -> Obj | None:
        return self._objects.get(gr, {}).get((namespace, name))

    def list(self, gr: GR, namespace: str | None = None,
             accept: Callable[[Obj], bool] | None = None) -> tuple[list[Obj], int]:
        """Objects sorted by (namespace, name), and the resourceVersion the list is consistent at."""
        with self._lock:
            bucket = self._objects.get(gr, {})
            keys = sorted(bucket) if namespace is None else sorted(k for k in bucket if k[0] == namespace)
            items = [bucket[k] for k in keys]
            rv = self._rv
        if accept is not None:
            items = [o for o in items if accept(o)]
        return items, rv

    def resources(self) -> builtins.list[GR]:
        with self._lock:
            return [gr for gr, bucket in self._objects.items() if bucket]

    def all_objects(self) -> Iterable[tuple[GR, Obj]]:
        with self._lock:
            return [(gr, obj) for gr, bucket in self._objects.items() for obj in bucket.values()]

    # --- writes ------------------------------------------------------------------------------

    def create(self, gr: GR, obj: Obj) -> Obj:
        key = key_of(obj)
        with self._lock:
            bucket = self._objects.setdefault(gr, {})
            if key in bucket:
                raise errors.already_exists(gr[1], key[1], gr[0])
            event = self._commit(gr, "ADDED", obj, None)
            bucket[key] = obj
        self._notify(event)
        return obj

    def update(self, gr: GR, obj: Obj, expected_rv: int | None = None) -> Obj:
        """Replace an object; ``expected_rv`` (if given) must match the stored resourceVersion."""
        key = key_of(obj)
        with self._lock:
            bucket = self._objects.get(gr, {})
            old = bucket.get(key)
            if old is None:
                raise errors.not_found(gr[1], key[1], gr[0])
            if expected_rv is not None and expected_rv != rv_of(old):
                raise errors.conflict(gr[1], key[1], gr[0])
            event = self._commit(gr, "MODIFIED", obj, old)
            bucket[key] = obj
        self._notify(event)
        return obj

    def delete(self, gr: GR, namespace: str, name: str, expected_rv: int | None = None) -> Obj:
        with self._lock:
            bucket = self._objects.get(gr, {})
            old = bucket.get((namespace, name))
            if old is None:
                raise errors.not_found(gr[1], name, gr[0])
            if expected_rv is not None and expected_rv != rv_of(old):
                raise errors.conflict(gr[1], name, gr[0])
            # A deletion carries a new resourceVersion, like the apiserver's final watch event.
            gone = {**old, "metadata": dict(old.get("metadata") or {})}
            event = self._commit(gr, "DELETED", gone, old)
            del bucket[(namespace, name)]
        self._notify(event)
        return gone

    def _commit(self, gr: GR, kind: str, obj: Obj, old: Obj | None) -> Event:
        self._rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._rv)
        event = Event(self._rv, gr, kind, obj, old)
        if len(self._log) == self._log.maxlen:
            self._log_floor = self._log[0].rv
        self._log.append(event)
        return event

    def _notify(self, event: Event) -> None:
        for watcher in list(self._watchers):
            if watcher.wants(event):
                watcher.push(event)
        for subscriber in list(self._subscribers):
            subscriber(event)

    # --- watch -------------------------------------------------------------------------------

    def watch(self, watcher: Watcher, since_rv: int | None) -> builtins.list[Event]:
        """Register ``watcher``; return the events it must see first.

        ``since_rv`` None: synthetic ADDED events for every current object (the "from now, with
        initial state" semantics of resourceVersion unset/"0"); otherwise every logged event after
        it. Raises 410 Gone when the log no longer reaches back that far.
        """
        with self._lock:
            if since_rv is None:
                bucket = self._objects.get(watcher.gr, {})
                initial = [Event(self._rv, watcher.gr, "ADDED", bucket[k]) for k in sorted(bucket)
                           if watcher.namespace is None or k[0] == watcher.namespace]
            else:
                if since_rv < self._log_floor:
                    raise errors.gone(f"too old resource version: {since_rv} ({self._log_floor + 1})")
                initial = [e for e in self._log if e.rv > since_rv and watcher.wants(e)]
            self._watchers.append(watcher)
        return initial

    def unwatch(self, watcher: Watcher) -> None:
        with self._lock:
            if watcher in self._watchers:
                self._watchers.remove(watcher)

    def close_watchers(self) -> None:
        with self._lock:
            watchers, self._watchers = self._watchers, []
        for watcher in watchers:
            watcher.push(None)

    def subscribe(self, callback: Callable[[Event], None]) -> None:
        self._subscribers.append(callback)

    # --- persistence -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"resourceVersion": self._rv,
                    "objects": [[gr[0], gr[1], obj] for gr, bucket in self._objects.items()
                                for obj in bucket.values()]}

    def restore(self, snapshot: dict[str, Any]) -> None:
        with self._lock:
            self._objects.clear()
            for group, plural, obj in snapshot.get("objects", []):
                self._objects.setdefault((group, plural), {})[key_of(obj)] = obj
            self._rv = int(snapshot.get("resourceVersion", 0))
            self._log.clear()
            self._log_floor = self._rv  # watches cannot resume across a restart
