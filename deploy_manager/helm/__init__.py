"""The only place that runs the helm binary (`runner.HelmRunner`). It runs what it is told; it never decides."""

from deploy_manager.helm.runner import (
    ChartRenderError,
    HelmError,
    HelmNotFound,
    HelmResult,
    HelmRunner,
    HelmTimeout,
    ReleaseLocked,
)

__all__ = [
    "ChartRenderError",
    "HelmError",
    "HelmNotFound",
    "HelmResult",
    "HelmRunner",
    "HelmTimeout",
    "ReleaseLocked",
]
