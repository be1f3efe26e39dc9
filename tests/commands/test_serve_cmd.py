"""`deploy-manager serve` as operators run it: a separate process configured only by DM_* variables (secrets
from mounted files), against the sandbox with the real helm binary. JSON logs without secrets, graceful
SIGTERM, and a self-upgrade where the old process dies mid-run and the new one finishes the work.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.corelib import (
    CONFIGMAP_TEMPLATE,
    DEPLOYMENT_TEMPLATE,
    commit,
    init_repo,
    write_chart,
    write_cluster,
    write_values,
)

pytestmark = [pytest.mark.helm, pytest.mark.slow]

DM = str(Path(sys.executable).parent / "deploy-manager")
SECRET = "serve-test-webhook-secret"
READ = "serve-test-read-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = init_repo(tmp_path / "remote")
    namespace = f"serve-{os.getpid()}-{int(time.time() * 1000) % 100000}"
    write_chart(root, "charts/openstack/memcached")
    write_chart(root, "charts/openstack/keystone", template=CONFIGMAP_TEMPLATE + DEPLOYMENT_TEMPLATE)
    write_cluster(
        root,
        "dev",
        {
            "namespace": namespace,
            "components": {
                "memcached": {"chart": "charts/openstack/memcached"},
                "keystone": {"chart": "charts/openstack/keystone", "needs": ["memcached"]},
            },
        },
    )
    write_values(root, "dev", "keystone", {"workers": 0})
    commit(root, "initial")
    return root


class Serve:
    def __init__(
        self, tmp_path: Path, repo: Path, kubeconfig: Path, helm: Path, name: str, *flags: str, **env: str
    ) -> None:
        creds = tmp_path / "credentials"
        creds.mkdir(exist_ok=True)
        (creds / "github-webhook-secret").write_text(SECRET + "\n")
        (creds / "read-tokens").write_text(READ + "\n")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"{name}.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith("DM_")}
        base.update(
            DM_REPO_URL=f"file://{repo}",
            DM_CLUSTER="dev",
            DM_STATE_DIR=str(tmp_path / "state"),
            DM_KUBECONFIG=str(kubeconfig),
            DM_HELM_BIN=str(helm),
            DM_HOST="127.0.0.1",
            DM_PORT=str(self.port),
            DM_POLL_INTERVAL_SECONDS="0",
            DM_GITHUB_WEBHOOK_SECRET_FILE=str(creds / "github-webhook-secret"),
            DM_READ_TOKENS_FILE=str(creds / "read-tokens"),
            DM_JENKINS_TOKEN_FILE=str(creds / "jenkins-token"),  # absent key: Jenkins disabled
            DM_LEASE_NAMESPACE="default",
            DM_LEASE_NAME=f"dm-serve-{os.getpid()}-{repo.parent.name.lower().replace('_', '-')}"[:63].rstrip("-"),
            DM_LEASE_DURATION_SECONDS="3",
            DM_LEASE_RENEW_SECONDS="1",
            POD_NAME=name,
        )
        base.update(env)
        base = {k: v for k, v in base.items() if v}  # an empty value: leave the variable unset
        self.log = self.log_path.open("w")
        self.proc = subprocess.Popen([DM, "serve", *flags], env=base, stdout=self.log, stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {READ}"}, timeout=30)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()
            with contextlib.suppress(httpx.TransportError):
                if self.client.get("/readyz").status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError("not ready: " + self.log_path.read_text())

    def runs(self) -> list[dict[str, Any]]:
        return list(self.client.get("/runs").json())

    def wait_finished(self, predicate: Any = lambda runs: True, timeout: float = 60) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.runs()
            if runs and all(r["status"] not in ("queued", "running") for r in runs) and predicate(runs):
                return runs
            time.sleep(0.1)
        raise AssertionError(f"runs did not finish: {self.runs()}")

    def push(self, sha: str) -> httpx.Response:
        body = json.dumps({"ref": "refs/heads/main", "after": sha}).encode()
        sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        return self.client.post(
            "/hooks/github",
            content=body,
            headers={"Content-Type": "application/json", "X-GitHub-Event": "push", "X-Hub-Signature-256": sig},
        )

    def close(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


@pytest.fixture
def serve(tmp_path: Path, repo: Path, sandbox_module: Any, helm_bin: Path) -> Iterator[Any]:
    started: list[Serve] = []

    def factory(name: str, *flags: str, **env: str) -> Serve:
        svc = Serve(tmp_path, repo, Path(sandbox_module.kubeconfig), helm_bin, name, *flags, **env)
        started.append(svc)
        return svc

    yield factory
    for svc in started:
        svc.close()


def test_serve_deploys_a_push_logs_json_without_secrets_and_stops_on_sigterm(serve: Any, repo: Path) -> None:
    svc = serve("pod-a")
    svc.wait_ready()
    svc.wait_finished()
    write_values(repo, "dev", "keystone", {"workers": 4})
    sha = commit(repo, "keystone workers=4")
    answer = svc.push(sha)
    assert answer.status_code == 202 and answer.json()["status"] == "queued"
    run_id = answer.json()["run_id"]
    runs = svc.wait_finished(lambda runs: runs[0]["id"] == run_id)
    assert runs[0]["status"] == "succeeded" and runs[0]["commit"] == sha
    # Jenkins: its token file does not exist, so the endpoint is disabled, not open.
    assert svc.client.post("/hooks/jenkins").status_code == 503
    svc.proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal it caught (exit by SIGTERM, as the kubelet expects).
    assert svc.proc.wait(30) in (0, -signal.SIGTERM)
    lines = [json.loads(line) for line in svc.log_path.read_text().splitlines() if line.strip()]
    assert any(x["message"] == "Application shutdown complete." for x in lines)
    assert lines and all({"time", "level", "message", "cluster", "component", "run_id"} <= set(x) for x in lines)
    assert all(x["cluster"] == "dev" for x in lines)
    assert any(x["run_id"] == run_id for x in lines)
    assert any(x["run_id"] == run_id and x["component"] == "keystone" for x in lines)  # the step's line
    text = svc.log_path.read_text()
    assert SECRET not in text and READ not in text


def test_kubeconfig_context_and_helm_come_from_flags(serve: Any, sandbox_module: Any, helm_bin: Path) -> None:
    kubeconfig = Path(sandbox_module.kubeconfig)
    context = yaml.safe_load(kubeconfig.read_text())["current-context"]
    flags = ("--kubeconfig", str(kubeconfig), "--kube-context", context, "--helm-bin", str(helm_bin))
    svc = serve("pod-flags", *flags, DM_KUBECONFIG="", DM_HELM_BIN="", DM_KUBE_CONTEXT="no-such-context")
    svc.wait_ready()  # readiness checks the Kubernetes API: reached through --kubeconfig and --kube-context
    (run,) = svc.wait_finished()
    assert run["trigger"] == "startup" and run["status"] == "succeeded"  # helm ran: --helm-bin, not PATH


@pytest.mark.kubesim_only("holds a run open with kubesim's readiness delay")
def test_a_killed_service_leaves_an_interrupted_run_and_the_next_one_finishes_the_work(
    serve: Any, repo: Path, sandbox_module: Any
) -> None:
    old = serve("pod-old")
    old.wait_ready()
    old.wait_finished()
    sandbox_module.set_ready_delay(2.5)  # keystone's rollout now takes a while
    try:
        write_values(repo, "dev", "keystone", {"workers": 8})
        sha = commit(repo, "keystone workers=8")
        run_id = old.push(sha).json()["run_id"]
        deadline = time.monotonic() + 30
        while not any(r["id"] == run_id and r["status"] == "running" for r in old.runs()):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)  # helm is now waiting for the rollout
        old.proc.kill()  # the old pod dies mid-run (no SIGTERM grace)
        old.proc.wait(10)
        new = serve("pod-new")
        new.wait_ready()
        runs = new.wait_finished(lambda runs: runs[0]["id"] != run_id, timeout=90)
    finally:
        sandbox_module.set_ready_delay(0.05)
    by_id = {r["id"]: r for r in runs}
    assert by_id[run_id]["status"] == "interrupted"
    newest = runs[0]
    assert newest["trigger"] == "startup" and newest["commit"] == sha and newest["status"] == "succeeded"
    assert len([r for r in runs if r["id"] > run_id]) == 1  # re-planned once, not twice
    keystone = new.client.get("/releases/keystone").json()
    assert keystone["commit"] == sha and keystone["status"] == "deployed"
