"""The real control plane as the tests get it (run with DM_TEST_CLUSTER=kube; skipped on kubesim): v1.35.4,
RBAC enforced, kwok's nodes Ready, pods scheduled and Running/Ready, Jobs complete, and the sandbox's fault
annotations honoured on a pod template; between tests the cleaner leaves nothing behind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kubecluster.cluster import POD_LOG_LINE
from kubesim.testing import KubeCLI
from tests.realcluster import real_control_plane

pytestmark = pytest.mark.cluster


@pytest.fixture
def real(cluster_backend: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    skip_reason = "the real control plane's own tests (DM_TEST_CLUSTER=kube)"
    with real_control_plane(cluster_backend, request, skip_reason) as backend:
        yield backend


@pytest.fixture
def cli(real: Any, helm_bin: Path, kubectl_bin: Path, tmp_path: Path) -> KubeCLI:
    return KubeCLI(helm_bin, kubectl_bin, real.sandbox(tmp_path / "s").kubeconfig, tmp_path / "home")


def get(cli: KubeCLI, *args: str) -> Any:
    return json.loads(cli.kubectl("get", *args, "-o", "json").stdout)


def test_version_nodes_and_rbac(real: Any, cli: KubeCLI, tmp_path: Path) -> None:
    version = json.loads(cli.kubectl("version", "-o", "json").stdout)["serverVersion"]
    assert version["gitVersion"] == "v1.35.4"
    nodes = get(cli, "nodes")["items"]
    assert len(nodes) == 3
    for node in nodes:
        assert {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"] == "True"
        assert not node["spec"].get("taints")
    with real.cluster.client() as client:
        token = client.post("/api/v1/namespaces/default/serviceaccounts/default/token",
                            json={"spec": {"expirationSeconds": 600}}).raise_for_status().json()["status"]["token"]
    nobody = KubeCLI(cli.helm_bin, cli.kubectl_bin,
                     real.cluster.kubeconfig_for_token(tmp_path / "sa.kubeconfig", token), tmp_path / "home2")
    denied = nobody.kubectl("get", "secrets", check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()  # RBAC is enforced
    assert nobody.kubectl("auth", "can-i", "create", "deployments", check=False).stdout.strip() == "no"


def test_workloads_run_jobs_finish_and_faults_from_annotations(cli: KubeCLI) -> None:
    manifests = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx:1}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: stuck}
spec:
  selector: {matchLabels: {app: stuck}}
  template:
    metadata: {labels: {app: stuck}, annotations: {kubesim.io/never-ready: "true"}}
    spec: {containers: [{name: web, image: nginx:1}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: ok}
spec:
  template:
    spec: {restartPolicy: Never, containers: [{name: c, image: busybox}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: bad}
spec:
  backoffLimit: 0
  template:
    metadata: {annotations: {kubesim.io/fail: "true"}}
    spec: {restartPolicy: Never, containers: [{name: c, image: busybox}]}
"""
    cli.kubectl("apply", "-f", "-", input=manifests)
    cli.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    cli.kubectl("wait", "--for=condition=complete", "job/ok", "--timeout=60s")
    cli.kubectl("wait", "--for=condition=failed", "job/bad", "--timeout=60s")
    pods = get(cli, "pods", "-l", "app=web")["items"]
    assert {p["status"]["phase"] for p in pods} == {"Running"} and all(p["spec"]["nodeName"] for p in pods)
    stuck = cli.kubectl("rollout", "status", "deployment/stuck", "--timeout=3s", check=False)
    assert stuck.returncode != 0
    [pod] = get(cli, "pods", "-l", "app=stuck")["items"]
    assert pod["status"]["phase"] == "Running"
    assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "False"
    # kwok's server answers the kubelet API for its nodes: the API server proxies a pod's log from it
    # (over TLS checked against our CA), for a running pod and a finished Job's alike.
    assert POD_LOG_LINE in cli.kubectl("logs", "deployment/web", "--tail=5").stdout
    assert POD_LOG_LINE in cli.kubectl("logs", "job/ok").stdout


def test_the_cleaner_leaves_nothing_behind(real: Any, cli: KubeCLI) -> None:
    cli.kubectl("create", "namespace", "scratch")
    cli.kubectl("create", "configmap", "left", "-n", "scratch")
    cli.kubectl("create", "configmap", "left")
    cli.kubectl("create", "clusterrole", "left", "--verb=get", "--resource=pods")
    real.clean()
    assert cli.kubectl("get", "namespace", "scratch", check=False).returncode != 0
    assert cli.kubectl("get", "configmap", "left", check=False).returncode != 0
    assert cli.kubectl("get", "clusterrole", "left", check=False).returncode != 0
    assert cli.kubectl("get", "serviceaccount", "default").returncode == 0  # what the control plane keeps
    cli.kubectl("create", "namespace", "scratch")  # the name is free again at once


def test_the_cleaner_retries_a_connection_the_api_server_dropped(real: Any, cli: KubeCLI) -> None:
    """Under load the API server can drop the cleaner's connection ("Server disconnected"): the request is
    retried on a fresh client, and the test's namespace is still removed."""
    cli.kubectl("create", "namespace", "dropped-conn")

    class Drops(httpx.BaseTransport):
        calls = 0

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            Drops.calls += 1
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)

    def dropping() -> httpx.Client:
        return httpx.Client(base_url=real.cluster.url, transport=Drops())

    fresh = real._new_client
    replacements = iter([dropping])  # the first fresh client is dropped too; the next ones are real
    real._client = dropping()
    real._new_client = lambda: next(replacements, fresh)()
    try:
        real.clean()
    finally:
        del real._new_client
    assert Drops.calls == 2  # two attempts met a dropped connection; the third, on a fresh client, went through
    assert cli.kubectl("get", "namespace", "dropped-conn", check=False).returncode != 0
