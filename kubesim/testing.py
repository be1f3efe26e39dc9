"""Run a sandbox in-process for tests: uvicorn in a background thread on a free loopback port.

``start_sandbox(tmp_dir)`` is a context manager yielding a :class:`RunningSandbox` with ``url``,
``kubeconfig`` (a file in ``tmp_dir``), ``stats()``, ``reset_stats()``, ``inject_fault(**fault)``,
``clear_faults()``, ``set_ready_delay(seconds)`` and ``state`` (the :class:`kubesim.sim.Simulator`,
for direct inspection: ``state.store.get(("apps", "deployments"), "ns", "web")``).
:class:`KubeCLI` runs the real helm/kubectl binaries against a sandbox. ``wait_for(predicate)`` polls until the
sandbox's asynchronous controllers have made ``predicate()`` true. ``serve_stub(handler, home)`` serves a
hand-written :class:`StubHandler` (for tests of exactly what kubectl/helm send) with a kubeconfig for it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from kubesim.kubeconfig import write_kubeconfig
from kubesim.server import create_app
from kubesim.sim import Simulator


@dataclass
class RunningSandbox:
    url: str
    kubeconfig: Path
    state: Simulator

    def _client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)

    def http_client(self, timeout: float = 10) -> httpx.Client:
        """A raw HTTP client on the API, authenticated as the kubeconfig's user (kubesim needs no credentials;
        the real backend's ``KubeSandbox.http_client`` presents the admin certificate)."""
        return httpx.Client(base_url=self.url, timeout=timeout)

    def stats(self) -> dict[str, Any]:
        with self._client() as client:
            return client.get("/_sandbox/stats").raise_for_status().json()  # type: ignore[no-any-return]

    def reset_stats(self) -> dict[str, Any]:
        with self._client() as client:
            return client.post("/_sandbox/reset-stats").raise_for_status().json()  # type: ignore[no-any-return]

    def inject_fault(self, **fault: Any) -> dict[str, Any]:
        """Add a fault (see :mod:`kubesim.control`), e.g. ``inject_fault(type="job-fail", name="x")``."""
        with self._client() as client:
            return client.post("/_sandbox/faults", json=fault).raise_for_status().json()  # type: ignore[no-any-return]

    def clear_faults(self) -> None:
        with self._client() as client:
            client.delete("/_sandbox/faults").raise_for_status()

    def set_ready_delay(self, seconds: float) -> None:
        with self._client() as client:
            client.put("/_sandbox/config", json={"ready_delay": seconds}).raise_for_status()


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    """The first truthy ``predicate()`` within ``timeout`` seconds; AssertionError if there is none."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached")


class StubHandler(BaseHTTPRequestHandler):
    """Base of the stub API servers: keep-alive HTTP/1.1, no access log, JSON replies."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, code: int, obj: Any = None, raw: bytes | None = None) -> None:
        body = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _StubServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hang up on list/watch calls the stub answers; nothing to report


@contextmanager
def serve_stub(handler: type[BaseHTTPRequestHandler], home: Path) -> Iterator[dict[str, str]]:
    """Serve `handler` on 127.0.0.1:<free port> in a thread and write `home`/kubeconfig for it; yields the base
    environment for kubectl/helm (PATH, HOME=`home`, KUBECONFIG)."""
    server = _StubServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "s", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
        "contexts": [{"name": "s", "context": {"cluster": "s", "namespace": "default"}}],
        "current-context": "s",
        "users": [{"name": "u", "user": {}}],
    }
    (home / "kubeconfig").write_text(json.dumps(config))
    try:
        yield {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "KUBECONFIG": str(home / "kubeconfig")}
    finally:
        server.shutdown()
        server.server_close()


def free_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP, and
    # without it every keep-alive response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def make_server(sim: Simulator, sock: socket.socket) -> uvicorn.Server:
    config = uvicorn.Config(create_app(sim), log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=1, timeout_keep_alive=30)
    return uvicorn.Server(config)


@contextmanager
def start_sandbox(
    tmp_dir: Path, ready_delay: float = 0.05, state_file: Path | None = None
) -> Iterator[RunningSandbox]:
    sim = Simulator(ready_delay=ready_delay, state_file=state_file)
    sock = free_socket()
    host, port = sock.getsockname()[:2]
    server = make_server(sim, sock)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="kubesim", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("kubesim did not start")
        time.sleep(0.005)
    url = f"http://{host}:{port}"
    kubeconfig = write_kubeconfig(Path(tmp_dir) / "kubeconfig", url)
    try:
        yield RunningSandbox(url, kubeconfig, sim)
    finally:
        sim.store.close_watchers()  # end open watch streams first, or shutdown waits for them
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@dataclass
class KubeCLI:
    """Runs the real helm/kubectl against one sandbox: ``--kubeconfig`` is always passed, and helm's
    and kubectl's caches/config live under ``home`` (never the user's)."""

    helm_bin: Path
    kubectl_bin: Path
    kubeconfig: Path
    home: Path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HELM_", "KUBE"))}
        env.update(HOME=str(self.home), HELM_CACHE_HOME=str(self.home / "helm-cache"),
                   HELM_CONFIG_HOME=str(self.home / "helm-config"), HELM_DATA_HOME=str(self.home / "helm-data"),
                   KUBECACHEDIR=str(self.home / "kube-cache"))
        return env

    def run(self, binary: Path, *args: str, check: bool = True, input: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [str(binary), "--kubeconfig", str(self.kubeconfig), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout, env=self.env())
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\nstdout:\n{proc.stdout}\n"
                                 f"stderr:\n{proc.stderr}")
        return proc

    def helm(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.run(self.helm_bin, *args, check=check, timeout=timeout)

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.run(self.kubectl_bin, *args, check=check, input=input, timeout=timeout)
