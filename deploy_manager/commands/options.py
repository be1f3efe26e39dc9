"""Option types shared by subcommands, so every command spells a flag the same way."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer


class OutputFormat(enum.StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


# Options shared by every subcommand that talks to the cluster or the state store.
RepoOpt = Annotated[str, typer.Option("--repo", help="Values repo: a local path or a git URL.")]
ClusterOpt = Annotated[str, typer.Option("--cluster", help="Cluster name: values/<cluster>/cluster.yaml.")]
RevOpt = Annotated[str, typer.Option("--rev", help="Branch, tag or commit sha.")]
KubeconfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--kubeconfig", envvar="DM_KUBECONFIG", help="Kubeconfig path (default: in-cluster / ~/.kube/config)."
    ),
]
KubeContextOpt = Annotated[str | None, typer.Option("--kube-context", help="Kubeconfig context to use.")]
StateDirOpt = Annotated[
    Path | None, typer.Option("--state-dir", envvar="DM_STATE_DIR", help="Where the run database lives.")
]
HelmBinOpt = Annotated[str, typer.Option("--helm-bin", envvar="DM_HELM_BIN", help="The helm binary to run.")]
OutputOpt = Annotated[OutputFormat, typer.Option("-o", "--output", help="Output format.")]
LeaseNamespaceOpt = Annotated[
    str | None,
    typer.Option(
        "--lease-namespace",
        envvar="DM_LEASE_NAMESPACE",
        help="Namespace of the cluster's Lease and suspend ConfigMap (default: the pod's namespace, else default).",
    ),
]
