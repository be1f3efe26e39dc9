"""The `kubernetes` Python client (what deploy_manager/kube uses) against the sandbox: release
Secrets by label, Jobs and their Pods' logs, Leases with optimistic concurrency, watches."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from kubecluster.cluster import POD_LOG_LINE
from kubesim.testing import RunningSandbox, wait_for


@pytest.fixture
def api(sandbox: RunningSandbox) -> Iterator[client.ApiClient]:
    with config.new_client_from_config(config_file=str(sandbox.kubeconfig)) as api_client:
        yield api_client


def test_secrets_by_label_and_errors(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    for name, owner in (("a", "helm"), ("b", "helm"), ("c", "someone")):
        core.create_namespaced_secret("default", client.V1Secret(
            metadata=client.V1ObjectMeta(name=name, labels={"owner": owner}), string_data={"k": name}))
    listed = core.list_secret_for_all_namespaces(label_selector="owner=helm")
    assert sorted(s.metadata.name for s in listed.items) == ["a", "b"]
    assert listed.items[0].data == {"k": "YQ=="}
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_secret("nope", "default")
    assert missing.value.status == 404


def test_job_status_and_pod_logs(api: client.ApiClient, cluster_backend: str) -> None:
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    batch.create_namespaced_job("default", client.V1Job(
        metadata=client.V1ObjectMeta(name="db-sync-1a2b"),
        spec=client.V1JobSpec(backoff_limit=0, template=client.V1PodTemplateSpec(spec=client.V1PodSpec(
            restart_policy="Never", containers=[client.V1Container(name="run", image="img:1",
                                                                   command=["sh", "/scripts/db-sync.sh"])])))))
    done = wait_for(lambda: (j := batch.read_namespaced_job_status("db-sync-1a2b", "default")).status
                    and j.status.succeeded and j)
    assert {c.type for c in done.status.conditions if c.status == "True"} >= {"Complete"}
    [pod] = core.list_namespaced_pod("default", label_selector="job-name=db-sync-1a2b").items
    log = core.read_namespaced_pod_log(pod.metadata.name, "default")
    # kubesim synthesises a log naming the command; kwok's server serves one fixed line for every pod.
    assert (POD_LOG_LINE if cluster_backend == "kube" else "sh /scripts/db-sync.sh") in log


def test_lease_optimistic_concurrency(api: client.ApiClient) -> None:
    coord = client.CoordinationV1Api(api)
    lease = coord.create_namespaced_lease("default", client.V1Lease(
        metadata=client.V1ObjectMeta(name="deploy-manager"),
        spec=client.V1LeaseSpec(holder_identity="one", lease_duration_seconds=15)))
    stale_rv = lease.metadata.resource_version
    lease.spec.holder_identity = "two"
    coord.replace_namespaced_lease("deploy-manager", "default", lease)
    lease.metadata.resource_version = stale_rv
    lease.spec.holder_identity = "three"
    with pytest.raises(ApiException) as conflict:
        coord.replace_namespaced_lease("deploy-manager", "default", lease)
    assert conflict.value.status == 409
    assert coord.read_namespaced_lease("deploy-manager", "default").spec.holder_identity == "two"


def test_watch_with_the_python_client(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="w")))
    events = list(watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=rv,
                                       timeout_seconds=1))
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", "w")]
