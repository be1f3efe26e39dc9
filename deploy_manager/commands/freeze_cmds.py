"""`deploy-manager suspend|resume` (issue 13): freeze a component or the whole cluster during an incident.

They write the cluster's suspend ConfigMap (`deploy-manager-<cluster>-suspend`, next to the Lease in
--lease-namespace / DM_LEASE_NAMESPACE), which every run of the service and of `apply` reads: no --repo
needed. Exit 0 done; 2 an error (bad name, unreachable cluster), nothing written.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from deploy_manager.cli import app
from deploy_manager.commands.core_cmds import EXIT_ERROR, _errors
from deploy_manager.commands.options import (
    ClusterOpt,
    KubeconfigOpt,
    KubeContextOpt,
    LeaseNamespaceOpt,
    OutputFormat,
    OutputOpt,
)

if TYPE_CHECKING:
    from deploy_manager.kube.client import KubeClient
    from deploy_manager.kube.suspend import SuspendStore
    from deploy_manager.models.suspend import Suspensions

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_REASON = 1024

ComponentOpt = Annotated[
    str | None, typer.Option("--component", help="The component to freeze (default: the whole cluster).")
]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (shown in plans, `status` and the status page).")]


def lease_namespace_or_default(namespace: str | None) -> str:
    from deploy_manager.config import default_lease_namespace

    return namespace or os.environ.get("DM_LEASE_NAMESPACE") or default_lease_namespace()


def who() -> str:
    """user@host of the person running the command (recorded in the ConfigMap)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's random uid)
        user = f"uid-{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def check_component(component: str | None) -> None:
    if component is not None and (not _DNS_LABEL.match(component) or len(component) > 53):
        typer.echo(f"error: --component {component!r} is not a component name (a DNS label)", err=True)
        raise typer.Exit(EXIT_ERROR)


def read_suspensions(kube: KubeClient, cluster: str, namespace: str | None) -> Suspensions | None:
    """For `status`: the suspend ConfigMap's suspensions; None (with a warning) when it cannot be read."""
    from deploy_manager.kube.suspend import SuspendStore
    from deploy_manager.models.errors import DeployManagerError

    store = SuspendStore(kube, cluster=cluster, namespace=lease_namespace_or_default(namespace))
    try:
        return store.read()
    except DeployManagerError as exc:
        typer.echo(f"warning: cannot read the suspensions ({store.where}): {exc}", err=True)
        return None


def _store(cluster: str, namespace: str | None, kubeconfig: Path | None, kube_context: str | None) -> SuspendStore:
    from deploy_manager.kube.client import KubeClient
    from deploy_manager.kube.suspend import SuspendStore

    kube = KubeClient(kubeconfig=kubeconfig, context=kube_context)
    return SuspendStore(kube, cluster=cluster, namespace=lease_namespace_or_default(namespace))


@app.command()
def suspend(
    cluster: ClusterOpt,
    component: ComponentOpt = None,
    reason: ReasonOpt = "",
    lease_namespace: LeaseNamespaceOpt = None,
    output: OutputOpt = OutputFormat.table,
    kubeconfig: KubeconfigOpt = None,
    kube_context: KubeContextOpt = None,
) -> None:
    """Freeze a component (or the whole cluster): every run plans it `suspended` and writes nothing to it."""
    check_component(component)
    if len(reason) > MAX_REASON:
        typer.echo(f"error: --reason is longer than {MAX_REASON} characters", err=True)
        raise typer.Exit(EXIT_ERROR)
    with _errors():
        store = _store(cluster, lease_namespace, kubeconfig, kube_context)
        done = store.suspend(component, by=who(), reason=reason, source="cli")
        if output is OutputFormat.json:
            typer.echo(json.dumps(done.to_dict(), indent=2))
        else:
            typer.echo(f"{done.describe()} (cluster {cluster}, {store.where}); applies from the next run")


@app.command()
def resume(
    cluster: ClusterOpt,
    component: ComponentOpt = None,
    reason: ReasonOpt = "",
    lease_namespace: LeaseNamespaceOpt = None,
    output: OutputOpt = OutputFormat.table,
    kubeconfig: KubeconfigOpt = None,
    kube_context: KubeContextOpt = None,
) -> None:
    """Lift a suspension set by `suspend` (without --component: the cluster's own, not its components').

    A `suspend: true` in cluster.yaml is lifted in cluster.yaml. The next run deploys what waited."""
    check_component(component)
    with _errors():
        store = _store(cluster, lease_namespace, kubeconfig, kube_context)
        lifted = store.resume(component)
        what = "cluster" if component is None else f"component {component}"
        if output is OutputFormat.json:
            typer.echo(json.dumps({"resumed": lifted.to_dict() if lifted else None, "reason": reason}, indent=2))
        elif lifted is None:
            typer.echo(f"{what} of cluster {cluster} was not suspended in {store.where}")
        else:
            typer.echo(f"resumed {what} of cluster {cluster} (was: {lifted.describe()})")
