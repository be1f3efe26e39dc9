"""The service recovers by itself (issue 10): a failed run is retried later without a push, and a release left
pending by a dead helm is unlocked by the service's next run. Real service over HTTP, real helm, kubesim."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from tests.api.test_integration import Remote, Running, remote, start  # noqa: F401, F811  (fixtures)
from tests.servicelib import WRITE_TOKEN, wait_for

pytestmark = [pytest.mark.helm, pytest.mark.slow]


def runs(svc: Running) -> list[dict[str, Any]]:
    with svc.client() as c:
        return list(c.get("/runs", params={"limit": 50}).json())


@pytest.mark.kubesim_only("injects write failures through /_sandbox/")
def test_repeated_500s_fail_the_run_and_the_service_retries_it_without_a_push(
    start: Callable[..., Running],  # noqa: F811
    remote: Remote,  # noqa: F811
    sandbox_module: Any,  # noqa: F811
) -> None:
    svc = start(retry_initial_seconds=1, retry_max_seconds=2, retry_attempts=2, retry_failed_interval_seconds=0)
    assert svc.queue.wait_idle(60)
    sha = remote.change("keystone", 7)
    # Every write of keystone's objects answers 503: the helm retries are used up, the run fails (temporary).
    sandbox_module.inject_fault(
        type="fail-writes", resource="configmaps", namespace=remote.namespace, name="keystone-*", count=1000, code=503
    )
    try:
        with svc.client() as c:
            run_id = svc.push(c, sha).json()["run_id"]
        failed = wait_for(
            lambda: next((r for r in runs(svc) if r["id"] == run_id and r["status"] == "failed"), None), timeout=90
        )
    finally:
        sandbox_module.clear_faults()
    with svc.client() as c:
        failed = c.get(f"/runs/{run_id}").json()
    ks = [s for s in failed["steps"] if s["component"] == "keystone"]
    assert ks[0]["action"] == "upgrade" and ks[0]["status"] == "failed"
    assert [d["code"] for d in ks[0]["reason_details"]].count("retried") == 2  # three attempts in all
    # No push: the service triggers a `retry` run of the same commit, which succeeds now.
    retried = wait_for(
        lambda: next((r for r in runs(svc) if r["trigger"] == "retry" and r["status"] == "succeeded"), None), timeout=60
    )
    assert retried["commit"] == sha and retried["id"] > run_id
    with svc.client() as c:
        metrics = c.get("/metrics").text
    assert 'deploy_manager_retries_total{reason="temporary"}' in metrics
    assert 'deploy_manager_retries_total{reason="step"}' in metrics
    assert svc.releases()["keystone"]["deployed_commit"] == sha


@pytest.mark.kubesim_only("slows writes through /_sandbox/ to catch helm mid-write")
def test_a_pending_upgrade_left_by_a_killed_helm_is_recovered_by_the_services_next_run(
    start: Callable[..., Running],  # noqa: F811
    remote: Remote,  # noqa: F811
    sandbox_module: Any,
    helm_bin: Any,  # noqa: F811
) -> None:
    svc = start()
    assert svc.queue.wait_idle(60)
    # A helm upgrade of keystone as deploy-manager makes it (our labels), killed while it waits for the rollout.
    sandbox_module.inject_fault(
        type="slow", kind="Deployment", namespace=remote.namespace, name="keystone-api", seconds=60
    )
    sha = remote.change("keystone", 3)
    env = {**os.environ, "HELM_CACHE_HOME": str(svc.settings.state_dir / "helm")}
    proc = subprocess.Popen(
        [
            str(helm_bin),
            "upgrade",
            "keystone",
            str(remote.root / "charts/openstack/keystone"),
            "-n",
            remote.namespace,
            "--set",
            "replicas=2",
            "--wait",
            "--timeout",
            "60s",
            "--kubeconfig",
            str(sandbox_module.kubeconfig),
            "--labels",
            f"deploy-manager.io/digest=0123,deploy-manager.io/commit={sha}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    try:
        wait_for(lambda: _status(remote, sandbox_module, helm_bin) == "pending-upgrade", timeout=20, interval=0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    sandbox_module.clear_faults()
    with svc.server.client(WRITE_TOKEN) as c:
        answer = c.post("/runs", json={})
        assert answer.status_code == 202, answer.text
        run_id = answer.json()["run_id"]
    assert svc.queue.wait_idle(60)
    with svc.client() as c:
        run = c.get(f"/runs/{run_id}").json()
    assert run["status"] == "succeeded", run
    ks = [(s["action"], s["status"]) for s in run["steps"] if s["component"] == "keystone"]
    assert ks == [("unlock", "succeeded"), ("upgrade", "succeeded")]
    unlock = next(s for s in run["steps"] if s["action"] == "unlock")
    assert unlock["reason_details"][0]["code"] == "unlocked" and "rolled back to revision 1" in unlock["reasons"][0]
    assert _status(remote, sandbox_module, helm_bin) == "deployed"


def _status(repo: Remote, sandbox: Any, helm_bin: Any) -> str:
    out = subprocess.run(
        [
            str(helm_bin),
            "status",
            "keystone",
            "-n",
            repo.namespace,
            "-o",
            "json",
            "--kubeconfig",
            str(sandbox.kubeconfig),
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return str(json.loads(out)["info"]["status"]) if out.strip() else ""
