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
from tests.servicelib import wait_for

pytestmark = [pytest.mark.helm, pytest.mark.slow]

DM = str(Path(sys.executable).parent / "deploy-manager")
SECRET = "serve-test-webhook-secret"
READ = "serve-test-read-token"
WRITE = "serve-test-write-token"


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
        (creds / "write-tokens").write_text(WRITE + "\n")
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
            DM_WRITE_TOKENS_FILE=str(creds / "write-tokens"),
            DM_JENKINS_TOKEN_FILE=str(creds / "jenkins-token"),  # absent key: Jenkins disabled
            DM_LEASE_NAMESPACE="default",
            DM_LEASE_NAME=f"dm-serve-{os.getpid()}-{repo.parent.name.lower().replace('_', '-')}"[:63].rstrip("-"),
            DM_LEASE_DURATION_SECONDS="3",
            DM_LEASE_RENEW_SECONDS="1",
            POD_NAME=name,
        )
        base.update(env)
        base = {k: v for k, v in base.items() if v}  # an empty value: leave the variable unset
        self.env = base
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
    # The service drains, stops uvicorn and exits 0 (the signal is not re-raised: a clean shutdown).
    assert svc.proc.wait(30) == 0
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


# ---- shutdown (SIGTERM), Lease takeover after kill -9, supersede ------------------------------------------------


def add_glance(repo: Path) -> None:
    """A third component after keystone, so a run stopped during keystone has one it must not start."""
    cluster_yaml = repo / "values" / "dev" / "cluster.yaml"
    cluster = yaml.safe_load(cluster_yaml.read_text())
    cluster["components"]["glance"] = {"chart": "charts/openstack/glance", "needs": ["keystone"]}
    write_chart(repo, "charts/openstack/glance")
    write_cluster(repo, "dev", cluster)
    commit(repo, "add glance")


def helm_status(helm: Path, kubeconfig: Path, release: str, namespace: str) -> dict[str, Any] | None:
    """`helm status` with the release's labels (from `helm get metadata`) added."""
    flags = ["-n", namespace, "-o", "json", "--kubeconfig", str(kubeconfig)]
    out = subprocess.run([str(helm), "status", release, *flags], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return None
    status: dict[str, Any] = json.loads(out.stdout)
    meta = subprocess.run([str(helm), "get", "metadata", release, *flags], capture_output=True, text=True, check=True)
    status["labels"] = json.loads(meta.stdout).get("labels") or {}
    return status


def namespace_of(repo: Path) -> str:
    return str(yaml.safe_load((repo / "values" / "dev" / "cluster.yaml").read_text())["namespace"])


def wait_running(svc: Serve, run_id: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not any(r["id"] == run_id and r["status"] == "running" for r in svc.runs()):
        assert time.monotonic() < deadline, svc.runs()
        time.sleep(0.05)


def lease_holder(kubeconfig: Path, name: str) -> str | None:
    from deploy_manager.lease import KubernetesLeaseBackend

    record = KubernetesLeaseBackend(name=name, namespace="default", kubeconfig=kubeconfig).get()
    return record.holder if record else None


@pytest.mark.kubesim_only("holds helm in its wait with the sandbox's never-ready fault")
def test_sigterm_mid_run_finishes_running_helm_starts_nothing_new_answers_503_and_exits_0(
    serve: Any, repo: Path, sandbox_module: Any, helm_bin: Path
) -> None:
    add_glance(repo)
    kubeconfig, namespace = Path(sandbox_module.kubeconfig), namespace_of(repo)
    old = serve("pod-drain-old")
    old.wait_ready()
    old.wait_finished()
    glance_before = helm_status(helm_bin, kubeconfig, "glance", namespace)
    assert glance_before is not None
    sandbox_module.inject_fault(type="slow", kind="Deployment", namespace=namespace, name="keystone-api", seconds=4)
    try:
        write_values(repo, "dev", "keystone", {"workers": 5})
        write_values(repo, "dev", "glance", {"workers": 5})
        sha = commit(repo, "keystone and glance workers=5")
        run_id = old.push(sha).json()["run_id"]
        wait_running(old, run_id)
        time.sleep(1.5)  # keystone's helm now waits for its slow rollout; glance waits for keystone
        old.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        # Draining: HTTP still answers, and new triggers are refused with 503 + Retry-After.
        manual = old.client.post("/runs", headers={"Authorization": f"Bearer {WRITE}"})
        assert manual.status_code == 503 and int(manual.headers["Retry-After"]) > 0, manual.text
        assert old.push(sha).status_code == 503
        assert old.client.get("/readyz").status_code == 503
        assert old.proc.wait(60) == 0, old.log_path.read_text()[-3000:]
    finally:
        sandbox_module.clear_faults()
    lease_name = old_lease_name(old)
    assert lease_holder(kubeconfig, lease_name) is None  # released, not left to expire
    keystone = helm_status(helm_bin, kubeconfig, "keystone", namespace)
    glance = helm_status(helm_bin, kubeconfig, "glance", namespace)
    assert keystone is not None and keystone["info"]["status"] == "deployed"  # the running helm finished
    assert keystone["labels"]["deploy-manager.io/commit"] == sha
    assert glance is not None and glance["version"] == glance_before["version"]  # never started after SIGTERM
    lines = [json.loads(line) for line in old.log_path.read_text().splitlines() if line.strip()]
    assert any("draining" in x["message"] for x in lines)
    # Another instance continues: it re-plans and deploys what was not started.
    new = serve("pod-drain-new")
    new.wait_ready()
    runs = new.wait_finished(lambda runs: runs[0]["id"] != run_id, timeout=90)
    by_id = {r["id"]: r for r in runs}
    assert by_id[run_id]["status"] == "interrupted" and "not started: glance" in by_id[run_id]["error"]
    assert runs[0]["status"] == "succeeded" and runs[0]["commit"] == sha
    glance = helm_status(helm_bin, kubeconfig, "glance", namespace)
    assert glance is not None and glance["labels"]["deploy-manager.io/commit"] == sha


def old_lease_name(svc: Serve) -> str:
    return str(svc.env["DM_LEASE_NAME"])


@pytest.mark.kubesim_only("holds helm in its wait with the sandbox's never-ready fault")
def test_sigterm_with_a_run_longer_than_the_grace_ends_helm_and_records_interrupted(
    serve: Any, repo: Path, sandbox_module: Any, helm_bin: Path
) -> None:
    kubeconfig, namespace = Path(sandbox_module.kubeconfig), namespace_of(repo)
    old = serve("pod-grace-old", DM_SHUTDOWN_GRACE_SECONDS="2")
    old.wait_ready()
    old.wait_finished()
    sandbox_module.inject_fault(type="never-ready", kind="Deployment", namespace=namespace, name="keystone-api")
    try:
        write_values(repo, "dev", "keystone", {"workers": 6})
        sha = commit(repo, "keystone workers=6")
        run_id = old.push(sha).json()["run_id"]
        wait_running(old, run_id)
        time.sleep(1.5)  # keystone waits in helm for a rollout that never becomes ready (helm timeout 300 s)
        signalled = time.monotonic()
        old.proc.send_signal(signal.SIGTERM)
        assert old.proc.wait(60) == 0, old.log_path.read_text()[-3000:]
        assert time.monotonic() - signalled < 25  # grace 2 s, then helm is ended: not helm's 300 s
        assert lease_holder(kubeconfig, old_lease_name(old)) is None
        keystone = helm_status(helm_bin, kubeconfig, "keystone", namespace)
        # Ended with SIGTERM, helm recorded the release failed (recoverable), not pending-upgrade.
        assert keystone is not None and keystone["info"]["status"] == "failed"
    finally:
        sandbox_module.clear_faults()
    new = serve("pod-grace-new")
    new.wait_ready()
    runs = new.wait_finished(lambda runs: runs[0]["id"] != run_id, timeout=90)
    by_id = {r["id"]: r for r in runs}
    assert by_id[run_id]["status"] == "interrupted"
    (step,) = [s for s in new.client.get(f"/runs/{run_id}").json()["steps"] if s["status"] != "skipped"]
    assert step["component"] == "keystone" and step["status"] == "failed" and "ended by deploy-manager" in step["error"]
    assert runs[0]["status"] == "succeeded" and runs[0]["commit"] == sha  # the next instance recovered it
    keystone = helm_status(helm_bin, kubeconfig, "keystone", namespace)
    assert keystone is not None and keystone["info"]["status"] == "deployed"


@pytest.mark.kubesim_only("slows writes through /_sandbox/ to catch helm mid-run")
def test_after_kill_9_the_restarted_service_takes_the_lease_over_at_once(
    serve: Any, repo: Path, sandbox_module: Any, helm_bin: Path
) -> None:
    """Outside a cluster (no POD_NAME): the holder is a pid on this host that no longer runs. With the default
    30 s Lease, the restarted service writes long before the Lease would have expired."""
    kubeconfig, namespace = Path(sandbox_module.kubeconfig), namespace_of(repo)
    env = {"POD_NAME": "", "DM_LEASE_DURATION_SECONDS": "30", "DM_LEASE_RENEW_SECONDS": "10"}
    old = serve("host-old", **env)
    old.wait_ready()
    old.wait_finished()
    sandbox_module.inject_fault(type="slow", kind="Deployment", namespace=namespace, name="keystone-api", seconds=4)
    try:
        write_values(repo, "dev", "keystone", {"workers": 7})
        sha = commit(repo, "keystone workers=7")
        run_id = old.push(sha).json()["run_id"]
        wait_running(old, run_id)
        holder = wait_for(lambda: lease_holder(kubeconfig, old_lease_name(old)), timeout=20)  # inside the run
        assert holder.startswith(f"{socket.gethostname()}_{old.proc.pid}_")
        write_values(repo, "dev", "memcached", {"workers": 7})
        fix = commit(repo, "memcached workers=7")  # the restarted service has a write to do at once
        killed = time.monotonic()
        old.proc.kill()
        old.proc.wait(10)
        memcached_before = helm_status(helm_bin, kubeconfig, "memcached", namespace)
        assert memcached_before is not None
        new = serve("host-new", **env)
        while True:  # the first helm write of the restarted service: memcached's new revision
            status = helm_status(helm_bin, kubeconfig, "memcached", namespace)
            if status is not None and status["version"] > memcached_before["version"]:
                break
            assert time.monotonic() - killed < 60, new.log_path.read_text()[-3000:]
            time.sleep(0.1)
        elapsed = time.monotonic() - killed
    finally:
        sandbox_module.clear_faults()
    print(f"kill -9 -> first helm write of the restarted service: {elapsed:.1f}s (Lease duration 30s)")
    assert elapsed < 20  # the Lease alone would have taken 30 s
    lines = [json.loads(line) for line in new.log_path.read_text().splitlines() if line.strip()]
    assert any("took over the lease" in x["message"] and "no longer runs" in x["message"] for x in lines)
    memcached = helm_status(helm_bin, kubeconfig, "memcached", namespace)
    assert memcached is not None and memcached["labels"]["deploy-manager.io/commit"] == fix
