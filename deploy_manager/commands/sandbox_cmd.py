"""`deploy-manager sandbox`: serve the Kubernetes API sandbox (test/demo infrastructure)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deploy_manager.cli import app


@app.command()
def sandbox(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: a free port).")] = 0,
    kubeconfig_out: Annotated[
        Path | None, typer.Option("--kubeconfig-out", help="Where to write a kubeconfig for the sandbox.")
    ] = None,
    state_file: Annotated[
        Path | None, typer.Option("--state-file", help="Persist objects here and reload them on start.")
    ] = None,
    ready_delay: Annotated[
        float, typer.Option("--ready-delay", min=0.0, help="Seconds before a Deployment/StatefulSet/Job is ready.")
    ] = 0.2,
) -> None:
    """Serve the Kubernetes API sandbox (test and demo infrastructure) until SIGTERM/SIGINT."""
    try:
        from kubesim.main import serve_forever
    except ImportError as exc:  # the service image leaves the sandbox out
        typer.echo(
            f"error: the sandbox is not installed ({exc.name} missing): pip install 'deploy-manager[sandbox]'",
            err=True,
        )
        raise typer.Exit(2) from None

    serve_forever(
        host=host, port=port, kubeconfig_out=kubeconfig_out, state_file=state_file, ready_delay=ready_delay
    )
