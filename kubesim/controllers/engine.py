"""The stage engine: data-driven controllers in the manner of kwok's stages.

A :class:`Stage` says which objects it selects (resource + predicate), after what delay, and what
it writes (a function from the live object to the new object, usually a new ``status``). The
:class:`Engine` watches the store; for each written object and each stage that selects it, it arms
one timer keyed by (stage, object, trigger) — the trigger is by default the object's generation,
so a new spec re-arms the delay. When the timer fires, the stage re-reads the live object,
re-checks its predicate and writes the result, which may select the next stage. Stages must be
idempotent: a stage whose target state is reached no longer selects the object.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubesim import errors
from kubesim.store import GR, Event, Key, Store, key_of, rv_of

Obj = dict[str, Any]
log = logging.getLogger(__name__)


class StageContext(Protocol):
    """What a stage may consult: the store, the readiness delay, and the injected faults."""

    store: Store

    @property
    def ready_delay(self) -> float: ...

    def delay_for(self, obj: Obj) -> float: ...

    def never_ready(self, obj: Obj) -> bool: ...

    def job_fails(self, obj: Obj) -> bool: ...


def _generation(obj: Obj) -> Any:
    return (obj.get("metadata") or {}).get("generation")


@dataclass(frozen=True)
class Stage:
    name: str
    gr: GR
    selects: Callable[[Obj, StageContext], bool]
    write: Callable[[Obj, StageContext], Obj | None]  # the new object (a fresh dict) or None: nothing to do
    delay: Callable[[Obj, StageContext], float] = lambda obj, ctx: 0.0
    trigger: Callable[[Obj], Any] = _generation


@dataclass
class Engine:
    store: Store
    context: StageContext
    stages: tuple[Stage, ...]
    loop: asyncio.AbstractEventLoop | None = None
    _timers: dict[tuple[str, GR, Key], tuple[Any, asyncio.TimerHandle]] = field(default_factory=dict)
    _by_gr: dict[GR, list[Stage]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for stage in self.stages:
            self._by_gr.setdefault(stage.gr, []).append(stage)
        self.store.subscribe(self._on_event)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Begin reacting; objects already in the store (a restored state) are evaluated once."""
        self.loop = loop
        self.resync()

    def resync(self) -> None:
        """Re-evaluate every object, e.g. after a fault was cleared or the readiness delay changed."""
        loop = self.loop
        if loop is None:
            return
        for gr, obj in self.store.all_objects():
            if gr in self._by_gr:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._evaluate, gr, obj)

    def stop(self) -> None:
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self.loop = None

    def _on_event(self, event: Event) -> None:
        loop = self.loop
        if loop is None or event.gr not in self._by_gr or event.type == "DELETED":
            return
        with contextlib.suppress(RuntimeError):  # loop already closed during shutdown
            loop.call_soon_threadsafe(self._evaluate, event.gr, event.obj)

    def _evaluate(self, gr: GR, obj: Obj) -> None:
        assert self.loop is not None
        key = key_of(obj)
        for stage in self._by_gr.get(gr, ()):
            timer_key = (stage.name, gr, key)
            if not stage.selects(obj, self.context):
                continue
            trigger = stage.trigger(obj)
            armed = self._timers.get(timer_key)
            if armed is not None:
                if armed[0] == trigger:
                    continue
                armed[1].cancel()
            handle = self.loop.call_later(stage.delay(obj, self.context), self._fire, stage, gr, key, trigger)
            self._timers[timer_key] = (trigger, handle)

    def _fire(self, stage: Stage, gr: GR, key: Key, trigger: Any) -> None:
        self._timers.pop((stage.name, gr, key), None)
        live = self.store.get(gr, *key)
        if live is None or not stage.selects(live, self.context):
            return
        new = stage.write(live, self.context)
        if new is None:
            return
        try:
            self.store.update(gr, new, expected_rv=rv_of(live))
        except errors.ApiError as exc:
            # Lost a race with a client write: the event it produced re-evaluates the stage.
            log.debug("stage %s on %s/%s: %s", stage.name, key[0], key[1], exc.message)
