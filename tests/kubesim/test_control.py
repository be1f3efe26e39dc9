"""The /_sandbox/ control API: request statistics, fault injection, runtime config."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kubesim.testing import KubeCLI, RunningSandbox, wait_for

pytestmark = pytest.mark.kubesim_only("the /_sandbox/ control API is kubesim's own")

CM = "/api/v1/namespaces/default/configmaps"
JOBS = "/apis/batch/v1/namespaces/default/jobs"
DEPLOY = "/apis/apps/v1/namespaces/default/deployments"
APP = str(Path(__file__).parent / "charts" / "app")


@pytest.fixture
def client(sandbox: RunningSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, timeout=10) as c:
        yield c


def job(name: str) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}


def deployment(name: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "x"}]}}}}


def conditions(obj: dict[str, Any]) -> set[str]:
    return {c["type"] for c in obj.get("status", {}).get("conditions", []) if c["status"] == "True"}


def test_stats_count_requests_and_writes(client: httpx.Client, sandbox: RunningSandbox) -> None:
    sandbox.reset_stats()
    client.get(CM)
    client.post(CM, json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}})
    client.get(f"{CM}/s")
    client.delete(f"{CM}/s")
    client.get("/version")
    stats = sandbox.stats()
    assert stats["requests"] == 5 and stats["writes"] == 2
    assert stats["by_resource"]["configmaps"] == {"list": 1, "create": 1, "get": 1, "delete": 1}
    assert stats["by_verb"]["get"] == 2
    before = sandbox.reset_stats()
    assert before["requests"] == 5
    assert sandbox.stats()["requests"] == 0


def test_fail_next_writes(client: httpx.Client, sandbox: RunningSandbox) -> None:
    fault = sandbox.inject_fault(type="fail-writes", resource="configmaps", count=2, code=500)
    assert fault["id"] and fault["count"] == 2
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "f"}}
    assert client.get(CM).status_code == 200  # reads are not writes
    first = client.post(CM, json=body)
    assert first.status_code == 500 and first.json()["reason"] == "InternalError"
    assert client.post(CM, json=body).status_code == 500
    assert client.post(CM, json=body).status_code == 201
    sandbox.inject_fault(type="fail-writes", resource="configmaps", name="f", code=409)
    conflict = client.put(f"{CM}/f", json=client.get(f"{CM}/f").json())
    assert conflict.status_code == 409 and conflict.json()["reason"] == "Conflict"
    assert client.get("/_sandbox/faults").json() == {"faults": []}


def test_latency_fault(client: httpx.Client, sandbox: RunningSandbox) -> None:
    sandbox.inject_fault(type="latency", seconds=0.3, resource="secrets", verbs=["list"])
    start = time.monotonic()
    client.get("/api/v1/namespaces/default/secrets")
    assert time.monotonic() - start >= 0.3
    start = time.monotonic()
    client.get(CM)
    assert time.monotonic() - start < 0.3
    sandbox.clear_faults()
    start = time.monotonic()
    client.get("/api/v1/namespaces/default/secrets")
    assert time.monotonic() - start < 0.3


def test_jobs_complete_or_fail_when_told(client: httpx.Client, sandbox: RunningSandbox) -> None:
    sandbox.inject_fault(type="job-fail", namespace="default", name="bad-*")
    client.post(JOBS, json=job("good"))
    client.post(JOBS, json=job("bad-1"))
    good = wait_for(lambda: "Complete" in conditions(j := client.get(f"{JOBS}/good").json()) and j)
    assert good["status"]["succeeded"] == 1 and good["status"]["completionTime"]
    bad = wait_for(lambda: "Failed" in conditions(j := client.get(f"{JOBS}/bad-1").json()) and j)
    assert bad["status"]["failed"] == 1 and "Complete" not in conditions(bad)
    events = client.get("/api/v1/namespaces/default/events",
                        params={"fieldSelector": "involvedObject.name=bad-1,type=Warning"}).json()["items"]
    assert [e["reason"] for e in events] == ["BackoffLimitExceeded"]


def test_never_ready_deployment_until_cleared(client: httpx.Client, sandbox: RunningSandbox) -> None:
    fault = sandbox.inject_fault(type="never-ready", kind="Deployment", name="stuck")
    client.post(DEPLOY, json=deployment("stuck"))
    client.post(DEPLOY, json=deployment("fine"))
    wait_for(lambda: client.get(f"{DEPLOY}/fine").json().get("status", {}).get("availableReplicas") == 1)
    time.sleep(0.3)
    stuck = client.get(f"{DEPLOY}/stuck").json()
    assert stuck["status"]["observedGeneration"] == 1 and "availableReplicas" not in stuck["status"]
    assert client.delete(f"/_sandbox/faults/{fault['id']}").status_code == 200
    wait_for(lambda: client.get(f"{DEPLOY}/stuck").json()["status"].get("availableReplicas") == 1)


def test_slow_fault_delays_only_matching_objects(client: httpx.Client, sandbox: RunningSandbox) -> None:
    sandbox.inject_fault(type="slow", kind="Job", name="slow-*", seconds=0.8)
    start = time.monotonic()
    client.post(JOBS, json=job("slow-1"))
    client.post(JOBS, json=job("quick"))
    wait_for(lambda: "Complete" in conditions(client.get(f"{JOBS}/quick").json()))
    assert time.monotonic() - start < 0.8
    assert "Complete" not in conditions(client.get(f"{JOBS}/slow-1").json())
    wait_for(lambda: "Complete" in conditions(client.get(f"{JOBS}/slow-1").json()))
    assert time.monotonic() - start >= 0.8


def test_ready_delay_is_configurable(client: httpx.Client, sandbox: RunningSandbox) -> None:
    sandbox.set_ready_delay(0.6)
    assert client.get("/_sandbox/config").json() == {"ready_delay": 0.6}
    start = time.monotonic()
    client.post(DEPLOY, json=deployment("slow"))
    wait_for(lambda: client.get(f"{DEPLOY}/slow").json().get("status", {}).get("availableReplicas") == 1)
    assert time.monotonic() - start >= 0.6


def test_bad_control_requests(client: httpx.Client) -> None:
    assert client.post("/_sandbox/faults", json={"type": "explode"}).status_code == 400
    assert client.post("/_sandbox/faults", json={"type": "latency"}).status_code == 400
    assert client.post("/_sandbox/faults", json={"type": "slow", "seconds": -1}).status_code == 400
    assert client.post("/_sandbox/faults", json={"type": "fail-writes", "code": 418}).status_code == 400
    assert client.post("/_sandbox/faults", json={"type": "fail-writes", "bogus": 1}).status_code == 400
    assert client.put("/_sandbox/config", json={"ready_delay": -1}).status_code == 400
    assert client.delete("/_sandbox/faults/999").status_code == 404
    assert client.get("/_sandbox/nothing").status_code == 404


@pytest.mark.helm
def test_helm_sees_injected_write_failures(kube_cli: KubeCLI, sandbox: RunningSandbox) -> None:
    sandbox.inject_fault(type="fail-writes", resource="secrets", verbs=["create"], count=1, code=500)
    failed = kube_cli.helm("install", "f", APP, "-n", "default", check=False)
    assert failed.returncode != 0 and "sandbox: injected 500" in failed.stderr
    sandbox.reset_stats()
    kube_cli.helm("install", "f", APP, "-n", "default")
    stats = sandbox.stats()
    assert stats["by_resource"]["secrets"]["create"] == 1
    assert stats["writes"] >= 5  # release record (create + update) and three applied objects


def test_job_runs_a_pod_whose_log_can_be_read(client: httpx.Client, sandbox: RunningSandbox) -> None:
    body = job("logged")
    body["spec"]["template"]["spec"]["containers"][0].update(command=["/bin/sh", "-c"], args=["echo hi"])
    client.post(JOBS, json=body)
    wait_for(lambda: "Complete" in conditions(client.get(f"{JOBS}/logged").json()))
    pods = client.get("/api/v1/namespaces/default/pods", params={"labelSelector": "job-name=logged"}).json()
    [pod] = pods["items"]
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    log = client.get(f"/api/v1/namespaces/default/pods/{pod['metadata']['name']}/log").text
    assert "/bin/sh -c echo hi" in log and "Succeeded" in log
    client.delete(f"{JOBS}/logged")  # no policy: a Job's Pods are orphaned, as on a real cluster
    orphan = client.get(f"/api/v1/namespaces/default/pods/{pod['metadata']['name']}").json()
    assert "ownerReferences" not in orphan["metadata"]
    client.post(JOBS, json=job("cascade"))
    wait_for(lambda: "Complete" in conditions(client.get(f"{JOBS}/cascade").json()))
    client.delete(f"{JOBS}/cascade", params={"propagationPolicy": "Background"})
    wait_for(lambda: client.get("/api/v1/namespaces/default/pods", params={"labelSelector": "job-name=cascade"})
             .json()["items"] == [])
