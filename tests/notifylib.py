"""Local stand-ins for the receivers of notifications, on 127.0.0.1 with a free port (real HTTP):

- `GitHubStatusServer` checks what GitHub's statuses API checks (`POST /repos/{owner}/{repo}/statuses/{sha}`,
  optionally under a GHE prefix such as `/api/v3`): the token in `Authorization` (401 "Bad credentials"), the
  repository (404), a full commit id, `state` in pending|success|failure|error, `description` at most 140
  characters, `context` a non-empty string, `target_url` an http(s) URL (422 "Validation Failed"). It records
  what it accepted and can answer 500 to everything (`fail_with`).
- `WebhookReceiver` records JSON bodies POSTed to it.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STATES = {"pending", "success", "failure", "error"}
TOKEN = "ghp_test0123456789abcdefTOKEN"


class _Server:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[dict[str, Any]] = []
        self.refused: list[tuple[int, str]] = []
        self.requests = 0
        self.fail_with: int | None = None
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                code, answer = owner.handle(self.path, dict(self.headers.items()), body)
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class GitHubStatusServer(_Server):
    def __init__(self, *, repository: str = "cloud/deploy", token: str = TOKEN, prefix: str = "/api/v3") -> None:
        super().__init__()
        self.repository = repository
        self.token = token
        self.prefix = prefix

    @property
    def api_url(self) -> str:
        return self.url + self.prefix

    def statuses(self, sha: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [s for s in self.received if sha is None or s["sha"] == sha]

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests += 1
        code, answer = self._check(path, {k.lower(): v for k, v in headers.items()}, body)
        if code >= 400:
            with self.lock:
                self.refused.append((code, answer["message"]))
        return code, answer

    def _check(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        if self.fail_with is not None:
            return self.fail_with, {"message": "Server Error"}
        auth = headers.get("authorization", "")
        if auth not in (f"Bearer {self.token}", f"token {self.token}"):
            return 401, {"message": "Bad credentials"}
        m = re.fullmatch(re.escape(self.prefix) + r"/repos/([^/]+/[^/]+)/statuses/([^/]+)", path)
        if m is None or m.group(1) != self.repository:
            return 404, {"message": "Not Found"}
        sha = m.group(2)
        if not re.fullmatch(r"[0-9a-f]{40}", sha):
            return 422, {"message": "No commit found for SHA: " + sha[:50]}
        if "json" not in headers.get("content-type", ""):
            return 415, {"message": "Unsupported Media Type"}
        try:
            data = json.loads(body)
        except ValueError:
            return 400, {"message": "Problems parsing JSON"}
        problems = []
        if data.get("state") not in STATES:
            problems.append("state")
        description = data.get("description")
        if description is not None and (not isinstance(description, str) or len(description) > 140):
            problems.append("description")
        context = data.get("context", "default")
        if not isinstance(context, str) or not context:
            problems.append("context")
        target = data.get("target_url")
        if target is not None and not (isinstance(target, str) and re.match(r"https?://", target)):
            problems.append("target_url")
        unknown = set(data) - {"state", "description", "context", "target_url"}
        if unknown:
            problems.append(",".join(sorted(unknown)))
        if problems:
            return 422, {"message": "Validation Failed", "errors": problems}
        record = {"sha": sha, **data}
        with self.lock:
            self.received.append(record)
        return 201, {"id": len(self.received), **data}


class WebhookReceiver(_Server):
    def __init__(self, path: str = "/services/T000/B000/secretpart") -> None:
        super().__init__()
        self.path = path

    @property
    def hook_url(self) -> str:
        return self.url + self.path

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.received)

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests += 1
        if self.fail_with is not None:
            return self.fail_with, {"message": "Server Error"}
        if path != self.path:
            return 404, {"message": "no such hook"}
        with self.lock:
            self.received.append(json.loads(body))
        return 200, {"ok": True}
