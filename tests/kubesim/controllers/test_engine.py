"""The stage engine: delays, re-arming on a new generation, resync after faults change."""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from typing import Any

from kubesim.controllers.engine import Engine, Stage
from kubesim.store import Store

Obj = dict[str, Any]
GR = ("example.com", "things")


@dataclass
class Ctx:
    store: Store = field(default_factory=Store)
    ready_delay: float = 0.05
    blocked: bool = False

    def delay_for(self, obj: Obj) -> float:
        return self.ready_delay

    def never_ready(self, obj: Obj) -> bool:
        return self.blocked

    def job_fails(self, obj: Obj) -> bool:
        return False


def ready_stage() -> Stage:
    def selects(obj: Obj, ctx: Any) -> bool:
        return not ctx.never_ready(obj) and obj.get("status", {}).get("ready") != obj["metadata"]["generation"]

    def write(obj: Obj, ctx: Any) -> Obj:
        return {**copy.deepcopy(obj), "status": {"ready": obj["metadata"]["generation"]}}

    return Stage("ready", GR, selects, write, lambda obj, ctx: ctx.ready_delay)


def thing(generation: int) -> Obj:
    return {"metadata": {"name": "t", "namespace": "ns", "generation": generation}}


def test_stage_fires_after_its_delay_and_rearms_on_a_new_generation() -> None:
    async def scenario() -> None:
        ctx = Ctx()
        engine = Engine(ctx.store, ctx, (ready_stage(),))
        engine.start(asyncio.get_running_loop())
        ctx.store.create(GR, thing(1))
        await asyncio.sleep(0.02)
        assert "status" not in ctx.store.get(GR, "ns", "t")  # type: ignore[operator]
        await asyncio.sleep(0.08)
        assert ctx.store.get(GR, "ns", "t")["status"] == {"ready": 1}  # type: ignore[index]
        live = ctx.store.get(GR, "ns", "t")
        ctx.store.update(GR, {**copy.deepcopy(live), "metadata": {**live["metadata"], "generation": 2}})  # type: ignore[index]
        await asyncio.sleep(0.1)
        assert ctx.store.get(GR, "ns", "t")["status"] == {"ready": 2}  # type: ignore[index]
        engine.stop()

    asyncio.run(scenario())


def test_resync_picks_up_objects_a_fault_held_back() -> None:
    async def scenario() -> None:
        ctx = Ctx(blocked=True)
        engine = Engine(ctx.store, ctx, (ready_stage(),))
        engine.start(asyncio.get_running_loop())
        ctx.store.create(GR, thing(1))
        await asyncio.sleep(0.1)
        assert "status" not in ctx.store.get(GR, "ns", "t")  # type: ignore[operator]
        ctx.blocked = False
        engine.resync()
        await asyncio.sleep(0.1)
        assert ctx.store.get(GR, "ns", "t")["status"] == {"ready": 1}  # type: ignore[index]
        engine.stop()

    asyncio.run(scenario())
