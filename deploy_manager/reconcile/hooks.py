"""The hook protocol around each component's helm write (bootstrap steps plug in here).

A hook is called with phase `before` (after pre-flight, before `helm upgrade --install`) and `after`
(once the release is ready). Raising fails the component: its dependents are blocked, the error
message is recorded on the step. Hooks run only for components whose action writes (install/upgrade).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from deploy_manager.kube.types import Job
from deploy_manager.models.desired import DesiredCluster, DesiredComponent
from deploy_manager.models.plan import Action
from deploy_manager.models.run import StepRecord


class HookPhase(enum.StrEnum):
    before = "before"
    after = "after"


@dataclass(frozen=True)
class HookContext:
    cluster: DesiredCluster
    component: DesiredComponent
    action: Action
    run_id: int | None
    chart: str = ""  # what helm is given as the chart: a local directory or a remote reference
    jobs: tuple[Job, ...] = ()  # the run snapshot's bootstrap Jobs of this component
    emit: Callable[[StepRecord], None] | None = None  # reports a sub-step to the run owner (which records it)


class ComponentHook(Protocol):
    def __call__(self, phase: HookPhase, ctx: HookContext) -> None: ...
