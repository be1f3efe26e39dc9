"""`deploy-manager drift`: live objects against each release's manifest, field by field (never writes).

Also the drift columns of `status` (`status_drift`): without the repo, the drift settings last recorded in the
state directory (by `drift`, `apply` or the service) are applied.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploy_manager.cli import app
from deploy_manager.commands.core_cmds import _emit, _errors, _pipeline, _source, _state_dir, format_table
from deploy_manager.commands.options import (
    ClusterOpt,
    HelmBinOpt,
    KubeconfigOpt,
    KubeContextOpt,
    OutputFormat,
    OutputOpt,
    RepoOpt,
    RevOpt,
    StateDirOpt,
)

if TYPE_CHECKING:
    from deploy_manager.drift import DriftReport
    from deploy_manager.kube.client import KubeClient
    from deploy_manager.models.observed import ObservedRelease


def drift_rows(report: DriftReport) -> list[dict[str, Any]]:
    return [c.to_dict() for c in report.components.values()]


def _paths_text(items: list[dict[str, Any]]) -> str:
    parts = []
    for i in items:
        where = f"{i['namespace']}/{i['name']}" if i["namespace"] else i["name"]
        parts.append(f"{i['kind']} {where}: {'missing' if i.get('missing') else ', '.join(i['paths'])}")
    return "; ".join(parts)


@app.command()
def drift(
    repo: RepoOpt,
    cluster: ClusterOpt,
    rev: RevOpt = "HEAD",
    output: OutputOpt = OutputFormat.table,
    kubeconfig: KubeconfigOpt = None,
    kube_context: KubeContextOpt = None,
    state_dir: StateDirOpt = None,
    helm_bin: HelmBinOpt = "helm",
) -> None:
    """Live objects that differ from their release's manifest (fields the manifest sets; cluster.yaml `drift`
    ignore rules at REV applied). Never writes to the cluster."""
    with _errors():
        pipe = _pipeline(kubeconfig, kube_context, state_dir, helm_bin)
        report = pipe.drift(_source(repo, state_dir), cluster, rev)
        rows = drift_rows(report)
        _emit(
            rows,
            output,
            lambda: (
                format_table(
                    ["component", "namespace", "release", "mode", "drifted", "drift"],
                    [
                        (r["component"], r["namespace"], r["release"], r["mode"], r["drifted"], _paths_text(r["drift"]))
                        for r in rows
                    ],
                )
                + f"\n{report.requests} API requests, {report.seconds:.2f}s"
            ),
        )


def status_drift(
    kube: KubeClient, cluster: str, releases: list[ObservedRelease], state_dir: Path | None
) -> dict[str, dict[str, Any]]:
    """component -> its drift row, for `status` (the policies last recorded in the state directory)."""
    from deploy_manager.drift import check_drift, load_policies, targets_of_releases

    policies = load_policies(_state_dir(state_dir), cluster)
    observed = {r.id: r for r in releases}
    report = check_drift(kube, cluster, targets_of_releases(releases, policies), observed)
    return {c.component: c.to_dict() for c in report.components.values()}
