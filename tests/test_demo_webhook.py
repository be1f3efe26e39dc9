"""The demo remote's post-receive hook: one signed GitHub push webhook per pushed ref, and a push that never
fails because the service is away."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pytest

HOOK = [sys.executable, str(Path(__file__).resolve().parents[1] / "scripts" / "demo_webhook.py")]
SECRET = b"demo-webhook-test-secret"
OLD, NEW = "1" * 40, "2" * 40


class Recorder(http.server.BaseHTTPRequestHandler):
    received: list[tuple[Message, bytes]] = []  # headers (case-insensitive, urllib sends X-github-event), body

    def do_POST(self) -> None:  # noqa: N802 (the name http.server calls)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.headers, body))
        self.send_response(202)
        self.end_headers()
        self.wfile.write(b'{"run_id": 7, "status": "queued"}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Recorder.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/github"
    server.shutdown()
    server.server_close()


def run_hook(url: str, secret_file: Path, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HOOK, url, str(secret_file)], input=stdin, capture_output=True, text=True, timeout=30)


def test_each_pushed_ref_is_one_signed_push_webhook(receiver: str, tmp_path: Path) -> None:
    (tmp_path / "secret").write_bytes(SECRET + b"\n")
    done = run_hook(receiver, tmp_path / "secret", f"{OLD} {NEW} refs/heads/main\n{NEW} {'0' * 40} refs/heads/x\n")
    assert done.returncode == 0, done.stderr
    answer = '202 {"run_id": 7, "status": "queued"}'
    assert done.stdout.splitlines()[0] == f"webhook: push refs/heads/main {NEW[:12]} -> {answer}"
    (headers, body), (_, deleted) = Recorder.received
    assert headers["X-GitHub-Event"] == "push" and headers["Content-Type"] == "application/json"
    assert headers["X-Hub-Signature-256"] == "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    assert json.loads(body) == {"ref": "refs/heads/main", "before": OLD, "after": NEW, "deleted": False}
    assert json.loads(deleted)["deleted"] is True


def test_a_service_that_is_away_does_not_fail_the_push(tmp_path: Path) -> None:
    (tmp_path / "secret").write_bytes(SECRET)
    done = run_hook("http://127.0.0.1:9/hooks/github", tmp_path / "secret", f"{OLD} {NEW} refs/heads/main\n")
    assert done.returncode == 0 and done.stdout.startswith(f"webhook: push refs/heads/main {NEW[:12]} -> not delivered")
