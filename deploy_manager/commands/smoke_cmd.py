"""`deploy-manager smoke`: run the cluster's workflow checks now (issue 14).

Exit codes: 0 every check passed; 1 a check failed, was slow (over its SLA) or could not run; 2 an error
before any check ran (bad input, unknown check, unreachable cluster).
"""

from __future__ import annotations

from typing import Annotated

import typer

from deploy_manager.cli import app
from deploy_manager.commands.core_cmds import (
    EXIT_FAILED,
    _emit,
    _errors,
    _pipeline,
    _source,
    format_table,
)
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

CheckOpt = Annotated[list[str] | None, typer.Option("--check", help="Only this check (repeatable).")]


@app.command()
def smoke(
    repo: RepoOpt,
    cluster: ClusterOpt,
    check: CheckOpt = None,
    rev: RevOpt = "HEAD",
    output: OutputOpt = OutputFormat.table,
    kubeconfig: KubeconfigOpt = None,
    kube_context: KubeContextOpt = None,
    state_dir: StateDirOpt = None,
    helm_bin: HelmBinOpt = "helm",
) -> None:
    """Run the cluster's workflow checks (values/<cluster>/smoke.yaml) now, as Jobs; exit 1 unless all pass."""
    with _errors():
        pipe = _pipeline(kubeconfig, kube_context, state_dir, helm_bin)
        results = pipe.smoke(_source(repo, state_dir), cluster, rev, names=list(check or []) or None)
        data = [r.to_dict() for r in results]
        _emit(
            data,
            output,
            lambda: (
                format_table(
                    ["check", "component", "status", "seconds", "detail"],
                    [(r.name, r.component, r.status.value, f"{r.duration:.1f}", r.error or r.job) for r in results],
                )
                + f"\n{sum(r.status.ok for r in results)} of {len(results)} checks passed"
            ),
        )
        if any(not r.status.ok for r in results):
            raise typer.Exit(EXIT_FAILED)
