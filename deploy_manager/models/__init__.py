"""Types shared by the pipeline: frozen dataclasses and enums only, no I/O.

Data flows forward: source -> desired (DesiredCluster) -> observe (ObservedRelease) -> planner (Plan)
-> reconcile (StepRecord/RunRecord) -> store.
"""

from deploy_manager.models.desired import BootstrapStep, ChartSpec, DesiredCluster, DesiredComponent
from deploy_manager.models.errors import (
    ChartError,
    ConfigError,
    CycleError,
    DeployManagerError,
    KubeUnavailable,
    SourceError,
    UnknownRevision,
)
from deploy_manager.models.observed import ObservedRelease, ReleaseId
from deploy_manager.models.plan import Action, ActionKind, Plan, Reason, ReleaseState
from deploy_manager.models.run import ReleaseStatus, RunRecord, RunStatus, StepRecord, StepStatus

__all__ = [
    "Action",
    "ActionKind",
    "BootstrapStep",
    "ChartError",
    "ChartSpec",
    "ConfigError",
    "CycleError",
    "DeployManagerError",
    "DesiredCluster",
    "DesiredComponent",
    "KubeUnavailable",
    "ObservedRelease",
    "Plan",
    "Reason",
    "ReleaseId",
    "ReleaseState",
    "ReleaseStatus",
    "RunRecord",
    "RunStatus",
    "SourceError",
    "StepRecord",
    "StepStatus",
    "UnknownRevision",
]
