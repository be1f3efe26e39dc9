"""The manager under its own chart's RBAC, on the real control plane (RBAC is enforced only there).

The ServiceAccount, Roles/ClusterRoles and bindings `charts/deploy-manager` renders are applied as they are;
the manager then runs with a token of that ServiceAccount: it deploys the demo OpenStack cluster (bootstrap
Jobs included) and holds its Lease. The API server's audit log says which requests the manager made and
which were refused: a refusal is a missing permission, and a granted rule the run never used is reported
(``-rP`` prints it) as a candidate for narrowing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy_manager.lease import ClusterLease, KubernetesLeaseBackend
from kubesim.testing import KubeCLI
from tests.corelib import commit, init_repo
from tests.realcluster import real_control_plane

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "deploy-manager"
DEPLOY_MANAGER = str(Path(sys.executable).parent / "deploy-manager")
NAMESPACE = "deploy-manager"
RBAC_KINDS = {"ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}
pytestmark = pytest.mark.cluster

REQUIRED = ["--set", "config.repoUrl=https://git.example.com/cloud/deploy.git", "--set", "config.cluster=demo"]


@pytest.fixture
def real_cluster(cluster_backend: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    skip_reason = "RBAC is enforced only on the real control plane (DM_TEST_CLUSTER=kube)"
    with real_control_plane(cluster_backend, request, skip_reason) as backend:
        yield backend


def chart_rbac(helm_bin: Path, *values: str) -> list[dict[str, Any]]:
    """The chart's ServiceAccount and RBAC objects, rendered exactly as `helm install` would."""
    out = subprocess.run([str(helm_bin), "template", "dm", str(CHART), "--namespace", NAMESPACE, *REQUIRED, *values],
                         capture_output=True, text=True, check=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc and doc["kind"] in RBAC_KINDS]


def demo_repo(root: Path) -> Path:
    repo = init_repo(root)
    for part in ("values", "charts/openstack", "bootstrap"):
        shutil.copytree(ROOT / part, repo / part, symlinks=True)
    commit(repo, "demo")
    return repo


def service_account_token(backend: Any, name: str) -> str:
    with backend.cluster.client() as client:
        resp = client.post(f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{name}/token",
                           json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                 "spec": {"expirationSeconds": 3600}})
        return str(resp.raise_for_status().json()["status"]["token"])


# The chart's defaults (cluster-admin) and the narrowed `rbac.mode: rules` set audited from what the code and the
# demo charts call (charts/deploy-manager/examples/rbac-rules.yaml): the demo cluster deploys with nothing refused.
RULES_EXAMPLE = CHART / "examples" / "rbac-rules.yaml"


@pytest.mark.parametrize(
    "values",
    [pytest.param([], id="chart-defaults"), pytest.param(["-f", str(RULES_EXAMPLE)], id="narrow-rules")],
)
def test_the_manager_deploys_the_demo_cluster_under_its_chart_rbac(
        real_cluster: Any, helm_bin: Path, kubectl_bin: Path, tmp_path: Path, values: list[str]) -> None:
    objects = chart_rbac(helm_bin, *values)
    accounts = [o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"]
    assert len(accounts) == 1, objects
    admin = KubeCLI(helm_bin, kubectl_bin, real_cluster.sandbox(tmp_path / "admin").kubeconfig, tmp_path / "home")
    admin.kubectl("create", "namespace", NAMESPACE)
    admin.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=yaml.safe_dump_all(objects))
    user = f"system:serviceaccount:{NAMESPACE}:{accounts[0]}"
    kubeconfig = real_cluster.cluster.kubeconfig_for_token(tmp_path / "sa.kubeconfig",
                                                           service_account_token(real_cluster, accounts[0]))
    since = real_cluster.audit_offset()

    lease = ClusterLease(KubernetesLeaseBackend(name="deploy-manager-demo", namespace=NAMESPACE,
                                                kubeconfig=kubeconfig), identity="rbac-test")
    assert lease.try_acquire(), "the manager could not take its Lease"
    try:
        env = dict(os.environ, DM_STATE_DIR=str(tmp_path / "state"), DM_HELM_BIN=str(helm_bin),
                   HOME=str(tmp_path / "home"))
        result = subprocess.run([DEPLOY_MANAGER, "apply", "--repo", str(demo_repo(tmp_path / "repo")),
                                 "--cluster", "demo", "--kubeconfig", str(kubeconfig)],
                                capture_output=True, text=True, env=env, timeout=900)
    finally:
        lease.release()
    usage = real_cluster.audit_usage(since, user)
    print(f"\nRBAC usage of {user} ({' '.join(values) or 'chart defaults'}):")
    for line in usage.report():
        print("  " + line)
    assert not usage.denied, f"requests refused by the chart's RBAC: {sorted(usage.denied)}"
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
