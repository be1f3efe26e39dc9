"""`deploy-manager serve`: the long-running service (FastAPI on uvicorn), configured by DM_* settings."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import FrameType
from typing import Annotated, Any

import typer

from deploy_manager.cli import app
from deploy_manager.commands.options import HelmBinOpt, KubeconfigOpt, KubeContextOpt

log = logging.getLogger(__name__)


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
    deploy_manager/config.py. On SIGTERM (or Ctrl-C) the service drains: new triggers get 503 with Retry-After,
    the running helm commands and bootstrap Jobs finish (up to DM_SHUTDOWN_GRACE_SECONDS), nothing new starts,
    the Lease is released, and the process exits 0.
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
    config = uvicorn.Config(
        service,
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep our JSON handler
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    DrainingServer(config, drain=service.state.drain).run()


class DrainingServer:
    """uvicorn's server, but SIGTERM/SIGINT first drain the run queue while HTTP keeps answering (a trigger gets
    503 + Retry-After, not a refused connection), then the server stops; the signal is not re-raised, so the
    process exits 0. A second signal stops the HTTP server at once (the drain still ends the run properly)."""

    def __init__(self, config: Any, *, drain: Callable[[], None]) -> None:
        import uvicorn

        outer = self

        class _Server(uvicorn.Server):
            def handle_exit(self, sig: int, frame: FrameType | None) -> None:
                outer.on_signal(sig)

        self.server = _Server(config)
        self._drain = drain
        self._draining: threading.Thread | None = None

    def on_signal(self, sig: int) -> None:
        if self._draining is None:
            log.info("received signal %s: draining", sig)
            self._draining = threading.Thread(target=self._drain_then_exit, name="drain", daemon=True)
            self._draining.start()
        else:
            self.server.should_exit = True

    def _drain_then_exit(self) -> None:
        try:
            self._drain()
        except Exception:
            log.exception("draining the run queue failed")
        finally:
            self.server.should_exit = True

    def run(self) -> None:
        self.server.run()
        if self._draining is not None:
            self._draining.join()
