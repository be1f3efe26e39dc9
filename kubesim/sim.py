"""The composition root: one :class:`Simulator` wires store, resource table, API semantics,
controllers, garbage collector, OpenAPI documents, control API and (optional) persistence.

``server.create_app(sim)`` serves it; ``main`` and ``testing`` build one each. ``start(loop)`` /
``stop()`` attach the asynchronous parts (controllers, GC, debounced saving) to the server's loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from kubesim.api import ResourceAPI
from kubesim.control import Control
from kubesim.controllers.engine import Engine
from kubesim.controllers.gc import GarbageCollector
from kubesim.controllers.stages import STAGES
from kubesim.discovery import BUILTINS, ResourceRegistry
from kubesim.openapi import OpenAPIRegistry
from kubesim.persistence import StateFile
from kubesim.store import Store

Obj = dict[str, Any]


class Simulator:
    def __init__(self, *, ready_delay: float = 0.05, state_file: Path | None = None) -> None:
        self.store = Store()
        self.persistence = StateFile(state_file, self.store) if state_file else None
        if self.persistence is not None:
            self.persistence.load()
        self.registry = ResourceRegistry.with_builtins()
        self.openapi = OpenAPIRegistry(group_versions=sorted({rt.group_version for rt in BUILTINS}))
        self.registry.crd_listeners.append(self._crd_changed)
        self.api = ResourceAPI(self.store, self.registry)
        self.control = Control(self.store, ready_delay)
        self.controllers = Engine(self.store, self, STAGES)
        self.gc = GarbageCollector(self.store, self.registry)
        self.control.on_change.append(self.controllers.resync)
        self.api.ensure_system_namespaces()

    # StageContext: what the controllers consult.
    @property
    def ready_delay(self) -> float:
        return self.control.ready_delay

    def delay_for(self, obj: Obj) -> float:
        return self.control.delay_for(obj)

    def never_ready(self, obj: Obj) -> bool:
        return self.control.never_ready(obj)

    def job_fails(self, obj: Obj) -> bool:
        return self.control.job_fails(obj)

    def _crd_changed(self, crd: Obj, served: bool) -> None:
        if served:
            self.openapi.add_crd(crd)
        else:
            self.openapi.remove_crd((crd.get("metadata") or {}).get("name", ""))

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.controllers.start(loop)
        self.gc.start(loop)
        if self.persistence is not None:
            self.persistence.start()

    def stop(self) -> None:
        self.controllers.stop()
        self.gc.stop()
        self.store.close_watchers()
        if self.persistence is not None:
            self.persistence.stop()
