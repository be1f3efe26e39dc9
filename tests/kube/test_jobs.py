"""`JobsApi` against the sandbox: typed errors, create/replace, Background deletion, pods and logs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy_manager.kube.client import KubeClient
from deploy_manager.kube.jobs import JobsApi, KubeConflict, KubeNotFound
from deploy_manager.models.errors import KubeUnavailable
from kubecluster.cluster import POD_LOG_LINE
from kubesim.testing import RunningSandbox, wait_for

NS = "jobs"


@pytest.fixture(scope="module")
def api(sandbox_module: RunningSandbox) -> Iterator[tuple[JobsApi, RunningSandbox]]:
    kube = KubeClient(kubeconfig=sandbox_module.kubeconfig)
    yield JobsApi(kube), sandbox_module
    kube.close()


def job(name: str) -> dict[str, Any]:
    pod = {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"t": "jobs"}},
        "spec": {"backoffLimit": 0, "template": {"spec": pod}},
    }


def test_namespace_job_pod_and_log(api: tuple[JobsApi, RunningSandbox], cluster_backend: str) -> None:
    jobs, _ = api
    jobs.ensure_namespace(NS)
    jobs.ensure_namespace(NS)  # idempotent
    created = jobs.create_job(NS, job("one"))
    assert created["metadata"]["uid"]
    with pytest.raises(KubeConflict, match="creating Job jobs/one: .* answered 409"):
        jobs.create_job(NS, job("one"))
    done = wait_for(lambda: (j := jobs.get_job(NS, "one")) and j.get("status", {}).get("succeeded") and j)
    assert done["metadata"]["name"] == "one"
    assert [j["metadata"]["name"] for j in jobs.list_jobs(NS, "t=jobs")] == ["one"]
    [pod] = wait_for(lambda: jobs.list_pods(NS, "job-name=one"))
    log = wait_for(lambda: jobs.pod_log(NS, pod["metadata"]["name"], tail_lines=50))
    # kubesim synthesises a log naming the command; kwok's server serves one fixed line for every pod.
    assert (POD_LOG_LINE if cluster_backend == "kube" else "runs: true") in log

    assert jobs.delete_job(NS, "one") is True
    assert jobs.get_job(NS, "one") is None
    assert jobs.delete_job(NS, "one") is False
    wait_for(lambda: not jobs.list_pods(NS, "job-name=one"))  # the Pod goes with its Job


def test_secrets_and_configmaps(api: tuple[JobsApi, RunningSandbox]) -> None:
    jobs, _ = api
    jobs.ensure_namespace(NS)
    assert jobs.get_secret(NS, "s") is None
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "Yg=="}}
    jobs.create_secret(NS, body)
    current = jobs.get_secret(NS, "s")
    assert current is not None and current["data"] == {"a": "Yg=="}
    body["data"] = {"a": "Yw=="}
    jobs.replace_secret(NS, body)
    assert (jobs.get_secret(NS, "s") or {})["data"] == {"a": "Yw=="}
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "1"}}
    jobs.create_configmap(NS, cm)
    cm["data"] = {"x": "2"}
    assert jobs.replace_configmap(NS, cm)["data"] == {"x": "2"}
    with pytest.raises(KubeNotFound):
        jobs.pod_log(NS, "no-such-pod", tail_lines=5)


def test_unreachable_api_is_kube_unavailable(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {}}]\n"
    )
    kube = KubeClient(kubeconfig=kubeconfig)
    try:
        with pytest.raises(KubeUnavailable, match="listing Jobs in x: cannot reach the Kubernetes API"):
            JobsApi(kube).list_jobs("x", "a=b")
    finally:
        kube.close()
