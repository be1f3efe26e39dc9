"""The bootstrap ServiceAccount the engine creates from the chart's render before the `before` steps.

Pure part (`bootstrap_objects`): which rendered objects are taken, with Helm's ownership metadata. End to end
(real helm, the demo cluster): keystone's key steps run `before` its install as the chart's bootstrap
ServiceAccount, which exists before them; helm's `--wait` install adopts the three objects into the release;
and a keystone-api that cannot become Ready without its keys (as the real one: see the OpenStack tier) lets
a first install converge with the steps `before`, while with the steps `after` it times out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.config import new_client_from_config

from deploy_manager.bootstrap.manifests import LABEL_COMPONENT, LABEL_STEP, job_complete
from deploy_manager.bootstrap.rbac import HELM_RELEASE_NAME, HELM_RELEASE_NAMESPACE, bootstrap_objects, differs
from deploy_manager.models.run import RunStatus, StepStatus
from deploy_manager.source.git import GitSource
from kubesim.testing import RunningSandbox
from tests.bootstrap.stack import CLUSTER, deployer, read_cluster
from tests.bootstrap.test_engine import JOBS, Recorder, component_steps
from tests.corelib import commit

SA = ("", "serviceaccounts")
ROLES = ("rbac.authorization.k8s.io", "roles")
BINDINGS = ("rbac.authorization.k8s.io", "rolebindings")
DEPLOYMENTS = ("apps", "deployments")
KEY_STEPS = ("fernet-setup", "credential-setup")


def _sa(name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/managed-by": "Helm"}}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}


def _role(name: str) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}]}  # fmt: skip


def _binding(name: str, role: str, account: str, namespace: str | None = None, kind: str = "Role") -> dict[str, Any]:
    subject: dict[str, Any] = {"kind": "ServiceAccount", "name": account}
    if namespace:
        subject["namespace"] = namespace
    ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role}
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": name},
            "roleRef": ref, "subjects": [subject]}  # fmt: skip


OTHER = [
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ks-bootstrap"}},
    _sa("keystone-api"),
    _role("unrelated"),
    _binding("unrelated", "unrelated", "keystone-api", "openstack"),
]


@pytest.mark.parametrize(
    ("docs", "want"),
    [
        pytest.param(OTHER, [], id="the chart renders no such account: nothing"),
        pytest.param(
            [*OTHER, _binding("ks-bootstrap", "ks-bootstrap", "ks-bootstrap", "openstack"), _role("ks-bootstrap"),
             _sa("ks-bootstrap")],
            [("ServiceAccount", "ks-bootstrap"), ("Role", "ks-bootstrap"), ("RoleBinding", "ks-bootstrap")],
            id="account, its role and binding, in creation order",
        ),
        pytest.param(
            [_sa("ks-bootstrap"), _binding("b", "viewer", "ks-bootstrap", kind="ClusterRole")],
            [("ServiceAccount", "ks-bootstrap")],
            id="a binding to a ClusterRole stays helm's",
        ),
        pytest.param(
            [_sa("ks-bootstrap"), _role("r"), _binding("b", "r", "ks-bootstrap", "elsewhere")],
            [("ServiceAccount", "ks-bootstrap")],
            id="a subject of another namespace is not this account",
        ),
        pytest.param(
            [_sa("ks-bootstrap", "elsewhere")], [], id="an account rendered into another namespace is not taken"
        ),
    ],
)  # fmt: skip
def test_bootstrap_objects_takes_the_account_and_its_namespaced_grants(docs: list[Any], want: list[Any]) -> None:
    got = bootstrap_objects([None, "text", *docs], "ks-bootstrap", release="keystone", namespace="openstack")
    assert [(o["kind"], o["metadata"]["name"]) for o in got] == want
    for obj in got:
        meta = obj["metadata"]
        assert meta["namespace"] == "openstack"
        assert meta["annotations"] == {HELM_RELEASE_NAME: "keystone", HELM_RELEASE_NAMESPACE: "openstack"}
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert "annotations" not in docs[-1]["metadata"]  # the render is not modified


def test_differs_compares_only_what_the_steps_rely_on() -> None:
    role = _role("r")
    assert not differs({**role, "metadata": {"name": "r", "resourceVersion": "7"}}, role)
    assert differs({**role, "rules": []}, role)
    binding = _binding("b", "r", "ks")
    assert differs({**binding, "subjects": []}, binding)
    assert not differs(_sa("x", "ns"), _sa("x"))


# -- end to end, real helm -----------------------------------------------------------------------------------
def _keystone_only(repo: Path, when: str) -> None:
    """The demo cluster cut to keystone and what it needs, its key steps `when` as given."""
    path = repo / "values" / CLUSTER / "cluster.yaml"
    data = read_cluster(repo)
    data["components"] = {k: v for k, v in data["components"].items() if k in ("rabbitmq", "memcached", "keystone")}
    for step in data["components"]["keystone"]["bootstrap"]:
        if step["name"] in KEY_STEPS:
            step["when"] = when
    data["components"]["keystone"]["timeout"] = 20  # helm --timeout: the "after" variant must time out quickly
    data["components"]["keystone"]["remediation"] = {"on_failure": "none"}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    smoke = repo / "values" / "_common" / "smoke.yaml"
    if smoke.exists():
        smoke.unlink()  # the workflow checks of the whole cloud are not this test's subject
    commit(repo, f"keystone only, key steps {when}")


class KeysLikeKeystone:
    """keystone-api as the real one behaves: not Ready until both key Secrets exist.

    The sandbox runs no containers, so what the key steps' scripts do (create the Secret through the API, as the
    bootstrap ServiceAccount) is done here when their Job completes, and the Deployment's unreadiness is a
    `never-ready` fault cleared once both Secrets exist.
    """

    def __init__(self, sandbox: RunningSandbox, namespace: str, keys: dict[str, str]) -> None:
        self.sandbox, self.namespace, self.keys = sandbox, namespace, keys
        sandbox.inject_fault(type="never-ready", namespace=namespace, name="keystone-api")
        self.core = k8s.CoreV1Api(new_client_from_config(config_file=str(sandbox.kubeconfig)))
        self.accounts: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        store = self.sandbox.state.store
        while not self._stop.is_set():
            for job in store.list(JOBS, self.namespace)[0]:
                step = job["metadata"]["labels"].get(LABEL_STEP)
                if step in self.keys and job_complete(job) and step not in self.accounts:
                    pod = job["spec"]["template"]["spec"]
                    self.accounts[step] = pod.get("serviceAccountName", "")
                    body = {"metadata": {"name": self.keys[step]}, "data": {"0": "a2V5"}}
                    self.core.create_namespaced_secret(self.namespace, body)
            if len(self.accounts) == len(self.keys):
                self.sandbox.clear_faults()
                return
            time.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.fixture
def keystone_env(sandbox: RunningSandbox, helm_bin: Path, tmp_path: Path) -> Iterator[Any]:
    recorder = Recorder()
    with deployer(sandbox, helm_bin, tmp_path, recorder) as d:
        yield d.repo, d.pipeline, recorder, d.helm


def _keys(repo: Path) -> dict[str, str]:
    values = yaml.safe_load((repo / "values" / "_common" / "keystone.yaml").read_text())
    return {"fernet-setup": values["keySecrets"]["fernet"], "credential-setup": values["keySecrets"]["credential"]}


@pytest.mark.kubesim_only("models keystone-api's readiness with a never-ready fault")
def test_first_install_under_wait_converges_with_the_key_steps_before(
    keystone_env: Any, sandbox: RunningSandbox
) -> None:
    repo, pipeline, recorder, helm = keystone_env
    _keystone_only(repo, "before")
    namespace = read_cluster(repo)["namespace"]
    account = yaml.safe_load((repo / "values" / "_common" / "keystone.yaml").read_text())["bootstrap"]["serviceAccount"]
    model = KeysLikeKeystone(sandbox, namespace, _keys(repo))
    try:
        run = pipeline.apply(GitSource(str(repo)), CLUSTER, "main", trigger="test")
    finally:
        model.stop()
    assert run.status is RunStatus.succeeded, run.error
    assert component_steps(run)["keystone"] is StepStatus.succeeded
    assert model.accounts == {step: account for step in KEY_STEPS}  # the key steps ran as the bootstrap account

    def rv(gr: tuple[str, str], name: str) -> int:
        found = [o for o in recorder.added(gr, namespace) if o["metadata"]["name"] == name]
        assert found, (gr, name)
        return int(found[0]["metadata"]["resourceVersion"])

    mine = [j for j in recorder.added(JOBS, namespace) if j["metadata"]["labels"][LABEL_COMPONENT] == "keystone"]
    jobs = {j["metadata"]["labels"][LABEL_STEP]: int(j["metadata"]["resourceVersion"]) for j in mine}
    # The account, its Role and RoleBinding exist before keystone's first Job; the key Jobs come before the
    # API Deployment (whose pods then start with their keys), in declared order.
    first_job = min(jobs.values())
    assert rv(SA, account) < first_job and rv(ROLES, account) < first_job and rv(BINDINGS, account) < first_job
    assert jobs["db-sync"] < jobs["fernet-setup"] < jobs["credential-setup"] < rv(DEPLOYMENTS, "keystone-api")
    assert rv(DEPLOYMENTS, "keystone-api") < jobs["register-endpoints"]
    # helm adopted them: they are part of the release (an uninstall or a rollback handles them as usual).
    manifest = helm.run(
        ["get", "manifest", "keystone", "--namespace", namespace, *helm._cluster_flags()], timeout=60
    ).stdout
    kinds = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(manifest) if d}
    assert {("ServiceAccount", account), ("Role", account), ("RoleBinding", account)} <= kinds
    live = sandbox.state.store.get(SA, namespace, account)
    assert live is not None and live["metadata"]["annotations"][HELM_RELEASE_NAME] == "keystone"
    # Components whose chart renders no bootstrap account still run their steps with no API token.
    for job in sandbox.state.store.list(JOBS, namespace)[0]:
        pod = job["spec"]["template"]["spec"]
        if job["metadata"]["labels"][LABEL_COMPONENT] != "keystone":
            assert pod.get("automountServiceAccountToken") is False and "serviceAccountName" not in pod


@pytest.mark.kubesim_only("models keystone-api's readiness with a never-ready fault")
def test_the_key_steps_after_the_install_time_out_under_wait(keystone_env: Any, sandbox: RunningSandbox) -> None:
    """Why they moved: with the key steps `after`, a first install's `--wait` never sees keystone-api Ready."""
    repo, pipeline, _, _ = keystone_env
    _keystone_only(repo, "after")
    model = KeysLikeKeystone(sandbox, read_cluster(repo)["namespace"], _keys(repo))
    try:
        run = pipeline.apply(GitSource(str(repo)), CLUSTER, "main", trigger="test")
    finally:
        model.stop()
    assert component_steps(run)["keystone"] is StepStatus.failed
    assert model.accounts == {}  # the key steps never ran
