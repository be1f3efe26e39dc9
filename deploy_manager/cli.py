"""The `deploy-manager` command.

Each subcommand lives in `deploy_manager/commands/<concern>.py` and registers itself on `app`;
work modules are imported lazily inside the commands so `--help` stays fast and the sandbox is
only loaded by `sandbox`. Flags follow helm/kubectl habits: `-n`, `-o json|yaml|table`,
`--kubeconfig`, `--kube-context`.
"""

from __future__ import annotations

import typer

from deploy_manager import __version__

app = typer.Typer(
    name="deploy-manager",
    help="GitOps deploy manager for the OpenStack control plane on Kubernetes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def root() -> None:
    """GitOps deploy manager for the OpenStack control plane on Kubernetes."""


@app.command()
def version() -> None:
    """Print the deploy-manager version."""
    typer.echo(__version__)


# Registration by import: each module adds its subcommands to `app`.
import deploy_manager.commands.core_cmds  # noqa: E402,F401
import deploy_manager.commands.drift_cmd  # noqa: E402,F401
import deploy_manager.commands.freeze_cmds  # noqa: E402,F401
import deploy_manager.commands.serve_cmd  # noqa: E402,F401
import deploy_manager.commands.smoke_cmd  # noqa: E402,F401
from deploy_manager.commands import sandbox_cmd  # noqa: E402,F401


def main() -> None:
    app()


if __name__ == "__main__":
    main()
