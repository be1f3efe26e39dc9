"""``deploy-manager sandbox``: serve the sandbox in the foreground until SIGTERM/SIGINT.

Prints exactly one line, ``sandbox ready <url> kubeconfig=<path>``, once the socket listens.
Set ``KUBESIM_LOG_REQUESTS=1`` to log every request (method, path, query, status, content types).
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType

from kubesim.kubeconfig import write_kubeconfig
from kubesim.sim import Simulator
from kubesim.testing import free_socket, make_server


def serve_forever(host: str = "127.0.0.1", port: int = 0, kubeconfig_out: Path | None = None,
                  state_file: Path | None = None, ready_delay: float = 0.05) -> None:
    if os.environ.get("KUBESIM_LOG_REQUESTS"):  # debugging aid: one log line per request
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        logging.getLogger("kubesim.server").setLevel(logging.DEBUG)
    sim = Simulator(ready_delay=ready_delay, state_file=state_file)
    try:
        sock = free_socket(host, port)
    except OSError as exc:
        raise SystemExit(f"sandbox: cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    bound_host, bound_port = sock.getsockname()[:2]
    url = f"http://{bound_host}:{bound_port}"
    if kubeconfig_out is None:
        kubeconfig_out = Path(tempfile.mkdtemp(prefix="kubesim-")) / "kubeconfig"
    write_kubeconfig(kubeconfig_out, url)
    server = make_server(sim, sock)

    # uvicorn runs in a worker thread (where it installs no signal handlers); the main thread owns
    # SIGTERM/SIGINT: both ask for a graceful shutdown, after which the command exits 0.
    def stop(signum: int, frame: FrameType | None) -> None:
        sim.store.close_watchers()  # end open watch streams first, or shutdown waits for them
        server.should_exit = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="kubesim")
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise SystemExit("sandbox: the server failed to start")
            time.sleep(0.01)
        print(f"sandbox ready {url} kubeconfig={kubeconfig_out}", flush=True)
        while thread.is_alive():
            thread.join(timeout=0.5)
    finally:
        server.should_exit = True
        thread.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
