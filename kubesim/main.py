"""``deploy-manager sandbox``: serve the sandbox in the foreground until SIGTERM/SIGINT.

Prints exactly one line, ``sandbox ready <url> kubeconfig=<path>``, once the socket listens.
Set ``KUBESIM_LOG_REQUESTS=1`` to log every request (method, path, query, status, content types).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
from pathlib import Path

from kubesim.kubeconfig import write_kubeconfig
from kubesim.sim import Simulator
from kubesim.testing import free_socket, make_server


def serve_forever(host: str = "127.0.0.1", port: int = 0, kubeconfig_out: Path | None = None,
                  state_file: Path | None = None, ready_delay: float = 0.05) -> None:
    if os.environ.get("KUBESIM_LOG_REQUESTS"):  # debugging aid: one log line per request
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        logging.getLogger("kubesim.server").setLevel(logging.DEBUG)
    sim = Simulator(ready_delay=ready_delay, state_file=state_file)
    sock = free_socket(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    url = f"http://{bound_host}:{bound_port}"
    if kubeconfig_out is None:
        kubeconfig_out = Path(tempfile.mkdtemp(prefix="kubesim-")) / "kubeconfig"
    write_kubeconfig(kubeconfig_out, url)
    server = make_server(sim, sock)

    async def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.01)
        print(f"sandbox ready {url} kubeconfig={kubeconfig_out}", flush=True)

    async def run() -> None:
        # serve() installs uvicorn's SIGTERM/SIGINT handlers: both end in a graceful shutdown.
        task = asyncio.create_task(announce())
        await server.serve(sockets=[sock])
        task.cancel()

    asyncio.run(run())
    sys.stdout.flush()
