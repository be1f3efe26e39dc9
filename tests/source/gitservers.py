"""Real git servers on loopback for the credential tests: OpenSSH's sshd and `git http-backend` behind TLS.

Both serve bare repositories from a directory with the stock git server programs; only the transport around
them is ours (sshd's own config for SSH, a small threaded HTTPS server speaking CGI to `git http-backend`).
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
EXEC_PATH = subprocess.run(["git", "--exec-path"], capture_output=True, text=True).stdout.strip()
HTTP_BACKEND = f"{EXEC_PATH}/git-http-backend"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(*args: str, cwd: Path | None = None) -> None:
    subprocess.run(args, check=True, capture_output=True, cwd=cwd)


def keypair(path: Path) -> tuple[str, str]:
    """An unencrypted ed25519 key pair: (private key text, public key line)."""
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path))
    return path.read_text(), path.with_suffix(".pub").read_text().strip()


@dataclass
class SshServer:
    url_prefix: str  # ssh://user@127.0.0.1:port
    known_hosts: str  # the line a client needs
    client_key: str  # private key authorised to log in


@contextlib.contextmanager
def ssh_server(root: Path) -> Iterator[SshServer]:
    """sshd on a high loopback port accepting one key for the current user; repositories are absolute paths."""
    work = root / "sshd"
    work.mkdir()
    _, host_pub = keypair(work / "host_key")
    client_key, client_pub = keypair(work / "client_key")
    (work / "authorized_keys").write_text(client_pub + "\n")
    (work / "authorized_keys").chmod(0o600)
    port = free_port()
    user = getpass.getuser()
    config = work / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {work / 'host_key'}",
                f"PidFile {work / 'sshd.pid'}",
                f"AuthorizedKeysFile {work / 'authorized_keys'}",
                f"AllowUsers {user}",
                "PermitRootLogin prohibit-password" if os.geteuid() == 0 else "",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",  # the test's temp dirs are not the hardened home sshd expects
                "LogLevel ERROR",
                "",
            ]
        )
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    with open(work / "log", "wb") as log:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=log)
    try:
        _wait_port(port, proc, work / "log")
        yield SshServer(
            url_prefix=f"ssh://{user}@127.0.0.1:{port}",
            known_hosts=f"[127.0.0.1]:{port} {' '.join(host_pub.split()[:2])}\n",
            client_key=client_key,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text(errors='replace')}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port}")


@dataclass
class HttpsServer:
    url_prefix: str  # https://127.0.0.1:port
    ca_bundle: str  # PEM of the CA that signed the server's certificate
    seen: list[tuple[str, str]] = field(default_factory=list)  # (path, Authorization header) per request


def make_ca(work: Path) -> tuple[Path, Path]:
    """A self-signed CA and a certificate for 127.0.0.1 it signed: (ca.pem, server.pem with its key)."""
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
         "-keyout", "ca.key", "-out", "ca.pem", cwd=work)  # fmt: skip
    _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-keyout", "server.key", "-out", "server.csr", cwd=work)  # fmt: skip
    (work / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-days", "2", "-extfile", "san.ext", "-out", "server.crt", cwd=work)  # fmt: skip
    (work / "server.pem").write_text((work / "server.crt").read_text() + (work / "server.key").read_text())
    return work / "ca.pem", work / "server.pem"


@contextlib.contextmanager
def https_server(root: Path, *, username: str, token: str) -> Iterator[HttpsServer]:
    """`git http-backend` for the bare repositories under `root`, behind TLS and HTTP basic auth."""
    work = root / "https"
    work.mkdir()
    ca, server_pem = make_ca(work)
    expected = "Basic " + base64.b64encode(f"{username}:{token}".encode()).decode()
    server_info = HttpsServer(url_prefix="", ca_bundle=ca.read_text())

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            auth = self.headers.get("Authorization", "")
            server_info.seen.append((self.path, auth))
            if auth != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path, _, query = self.path.partition("?")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": str(root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(length),
                "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                "REMOTE_USER": username,
                "REMOTE_ADDR": "127.0.0.1",
            }
            out = subprocess.run([HTTP_BACKEND], input=body, env=env, capture_output=True).stdout
            head, _, payload = out.partition(b"\r\n\r\n")
            status = 200
            headers = []
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.split()[0])
                elif name:
                    headers.append((name, value.strip()))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server_pem)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    server_info.url_prefix = f"https://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_info
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
