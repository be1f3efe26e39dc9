"""`deploy-manager serve`: the long-running service (FastAPI on uvicorn), configured by DM_* settings."""

from __future__ import annotations

from typing import Annotated

import typer

from deploy_manager.cli import app
from deploy_manager.commands.options import HelmBinOpt, KubeconfigOpt, KubeContextOpt


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: DM_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default: DM_PORT).")] = None,
    kubeconfig: KubeconfigOpt = None,
    kube_context: KubeContextOpt = None,
    helm_bin: HelmBinOpt = "helm",
) -> None:
    """Serve webhooks, polling, runs (one at a time per cluster), /releases and /metrics until SIGTERM.

    Settings come from DM_* variables (secrets also from DM_<NAME>_FILE or DM_SECRETS_DIR); see
    deploy_manager/config.py. On SIGTERM a running helm command is allowed to finish.
    """
    from pydantic import ValidationError

    from deploy_manager.config import ENV_PREFIX, Settings

    # Flags override the DM_* settings of the same name (--kubeconfig and --helm-bin also read DM_KUBECONFIG and
    # DM_HELM_BIN themselves, so the value passed on is the one Settings would have read).
    flags = {"host": host, "port": port, "kubeconfig": kubeconfig, "kube_context": kube_context, "helm_bin": helm_bin}
    overrides = {k: v for k, v in flags.items() if v is not None}
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        # Never print the input: it may be a secret.
        for err in exc.errors(include_input=False, include_url=False):
            name = f"{ENV_PREFIX}{str(err['loc'][0]).upper()}" if err["loc"] else "settings"
            typer.echo(f"error: {name}: {err['msg']}", err=True)
        raise typer.Exit(2) from None

    import uvicorn

    from deploy_manager.api import create_app
    from deploy_manager.logging_setup import configure_logging
    from deploy_manager.models.errors import DeployManagerError

    configure_logging(settings)
    try:
        service = create_app(settings)
    except DeployManagerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    uvicorn.run(
        service,
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep our JSON handler
        access_log=False,
        # uvicorn stops accepting connections at once; the lifespan then waits for a running run.
        timeout_graceful_shutdown=10,
    )
