"""The real kubectl v1.35 against the sandbox: apply (client-side and --server-side), get, delete,
rollout status, patch types, scale, labels/selectors, dry runs and error reporting."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubecluster.cluster import POD_LOG_LINE
from kubesim.differential import CONFIGMAP, DEPLOYMENT  # one copy: the differential runs the same objects
from kubesim.testing import KubeCLI

pytestmark = pytest.mark.helm


def apply(cli: KubeCLI, ns: str, manifest: str, *extra: str) -> str:
    return cli.kubectl("apply", "-n", ns, "-f", "-", *extra, input=manifest).stdout


def get(cli: KubeCLI, ns: str, *args: str) -> Any:
    return json.loads(cli.kubectl("get", "-n", ns, *args, "-o", "json").stdout)


@pytest.fixture
def ns(kube_cli_module: KubeCLI, request: pytest.FixtureRequest) -> str:
    name = request.node.name.replace("_", "-")[:50].strip("-")
    kube_cli_module.kubectl("create", "namespace", name)
    return name


def test_client_side_apply_create_then_update(kube_cli_module: KubeCLI, ns: str) -> None:
    cli = kube_cli_module
    assert "deployment.apps/web created" in apply(cli, ns, DEPLOYMENT.replace("TAG", "1"))
    assert "deployment.apps/web unchanged" in apply(cli, ns, DEPLOYMENT.replace("TAG", "1"))
    assert "deployment.apps/web configured" in apply(cli, ns, DEPLOYMENT.replace("TAG", "2"))
    deploy = get(cli, ns, "deployment", "web")
    containers = deploy["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("web", "nginx:2"), ("sidecar", "busybox:1")]
    assert containers[0]["env"] == [{"name": "A", "value": "1"}]
    assert "kubectl.kubernetes.io/last-applied-configuration" in deploy["metadata"]["annotations"]
    assert deploy["metadata"]["generation"] == 2
    cli.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=20s")
    assert deploy["metadata"]["annotations"].get("deployment.kubernetes.io/revision") in ("1", "2")
    assert get(cli, ns, "deployment", "web")["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"


def test_server_side_apply_and_conflicts(kube_cli_module: KubeCLI, ns: str) -> None:
    cli = kube_cli_module
    out = apply(cli, ns, CONFIGMAP.replace("MODE", "a"), "--server-side")
    assert "configmap/settings serverside-applied" in out
    fields = get(cli, ns, "configmap", "settings", "--show-managed-fields")["metadata"]["managedFields"]
    assert [(f["manager"], f["operation"]) for f in fields] == [("kubectl", "Apply")]
    # another manager owning data.mode makes a non-forced apply conflict
    apply(cli, ns, CONFIGMAP.replace("MODE", "b"), "--server-side", "--field-manager", "other", "--force-conflicts")
    clash = cli.kubectl("apply", "-n", ns, "--server-side", "-f", "-", input=CONFIGMAP.replace("MODE", "c"),
                        check=False)
    assert clash.returncode != 0 and "conflict" in clash.stderr.lower() and ".data.mode" in clash.stderr
    apply(cli, ns, CONFIGMAP.replace("MODE", "c"), "--server-side", "--force-conflicts")
    assert get(cli, ns, "configmap", "settings")["data"] == {"mode": "c"}


def test_get_with_selectors_and_table_output(kube_cli_module: KubeCLI, ns: str) -> None:
    cli = kube_cli_module
    apply(cli, ns, CONFIGMAP.replace("MODE", "a"))
    apply(cli, ns, DEPLOYMENT.replace("TAG", "1"))
    names = cli.kubectl("get", "configmaps,deployments", "-n", ns, "-l", "tier in (front,back)", "-o", "name").stdout
    assert sorted(names.split()) == ["configmap/settings", "deployment.apps/web"]
    assert cli.kubectl("get", "cm", "-n", ns, "-l", "tier=front", "-o", "name").stdout.strip() == ""
    by_field = cli.kubectl("get", "cm", "-n", ns, "--field-selector", "metadata.name=settings", "-o", "name")
    assert by_field.stdout.strip() == "configmap/settings"
    cli.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=20s")
    table = cli.kubectl("get", "deployment", "web", "-n", ns).stdout.splitlines()
    assert table[0].split()[:4] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE"]
    assert table[1].split()[:4] == ["web", "2/2", "2", "2"]


def test_patch_scale_label_annotate(kube_cli_module: KubeCLI, ns: str) -> None:
    cli = kube_cli_module
    apply(cli, ns, DEPLOYMENT.replace("TAG", "1"))
    cli.kubectl("patch", "deployment", "web", "-n", ns, "-p",
                '{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:3"}]}}}}')
    cli.kubectl("patch", "configmap", "missing", "-n", ns, "--type=merge", "-p", "{}", check=False)
    cli.kubectl("patch", "deployment", "web", "-n", ns, "--type=json", "-p",
                '[{"op":"replace","path":"/spec/replicas","value":4}]')
    cli.kubectl("scale", "deployment", "web", "-n", ns, "--replicas=3")
    cli.kubectl("label", "deployment", "web", "-n", ns, "color=blue")
    cli.kubectl("annotate", "deployment", "web", "-n", ns, "note=hi")
    deploy = get(cli, ns, "deployment", "web")
    assert [c["image"] for c in deploy["spec"]["template"]["spec"]["containers"]] == ["nginx:3", "busybox:1"]
    assert deploy["spec"]["replicas"] == 3
    assert deploy["metadata"]["labels"]["color"] == "blue" and deploy["metadata"]["annotations"]["note"] == "hi"
    cli.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=20s")
    assert get(cli, ns, "deployment", "web")["status"]["readyReplicas"] == 3


def test_delete_and_dry_run(kube_cli_module: KubeCLI, ns: str) -> None:
    cli = kube_cli_module
    dry = cli.kubectl("apply", "-n", ns, "-f", "-", "--dry-run=server", input=CONFIGMAP.replace("MODE", "a")).stdout
    assert "(server dry run)" in dry
    assert cli.kubectl("get", "configmap", "settings", "-n", ns, check=False).returncode != 0
    apply(cli, ns, DEPLOYMENT.replace("TAG", "1"))
    cli.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=20s")
    assert len(get(cli, ns, "replicasets")["items"]) == 1
    assert "deleted" in cli.kubectl("delete", "deployment", "web", "-n", ns, "--wait").stdout
    assert get(cli, ns, "deployments")["items"] == []
    assert get(cli, ns, "replicasets")["items"] == []  # garbage-collected with their owner
    missing = cli.kubectl("delete", "configmap", "nope", "-n", ns, check=False)
    assert missing.returncode != 0 and 'configmaps "nope" not found' in missing.stderr


def test_errors_are_reported_like_an_apiserver(kube_cli_module: KubeCLI, ns: str) -> None:
    cli = kube_cli_module
    bad_name = cli.kubectl("create", "configmap", "Bad_Name", "-n", ns, check=False)
    assert bad_name.returncode != 0 and "Invalid value: \"Bad_Name\"" in bad_name.stderr
    apply(cli, ns, CONFIGMAP.replace("MODE", "a"))
    exists = cli.kubectl("create", "configmap", "settings", "-n", ns, check=False)
    assert exists.returncode != 0 and "AlreadyExists" in exists.stderr or "already exists" in exists.stderr
    no_ns = cli.kubectl("create", "configmap", "x", "-n", "no-such-namespace", check=False)
    assert no_ns.returncode != 0 and 'namespaces "no-such-namespace" not found' in no_ns.stderr
    unknown = cli.kubectl("get", "frobnicators", "-n", ns, check=False)
    assert unknown.returncode != 0 and "doesn't have a resource type" in unknown.stderr
    mismatch = cli.kubectl("apply", "-n", ns, "-f", "-", check=False, input=DEPLOYMENT.replace("TAG", "1").replace(
        "labels: {app: web}\n    spec", "labels: {app: other}\n    spec"))
    assert mismatch.returncode != 0 and "selector" in mismatch.stderr and "does not match" in mismatch.stderr


def test_crd_then_custom_resource(kube_cli_module: KubeCLI, ns: str) -> None:
    cli = kube_cli_module
    crd = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.example.org}
spec:
  group: example.org
  scope: Namespaced
  names: {kind: Gadget, plural: gadgets, singular: gadget}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {type: object, properties: {color: {type: string}}}
"""
    cli.kubectl("apply", "-f", "-", input=crd)
    cli.kubectl("wait", "--for=condition=Established", "crd/gadgets.example.org", "--timeout=10s")
    apply(cli, ns, "apiVersion: example.org/v1\nkind: Gadget\nmetadata: {name: g1}\nspec: {color: red}\n")
    # switching from client-side to server-side apply: kubectl hands the field ownership over
    apply(cli, ns, "apiVersion: example.org/v1\nkind: Gadget\nmetadata: {name: g1}\nspec: {color: blue}\n",
          "--server-side")
    assert get(cli, ns, "gadgets", "g1")["spec"] == {"color": "blue"}
    cli.kubectl("delete", "crd", "gadgets.example.org")
    assert cli.kubectl("get", "gadgets", "-n", ns, check=False).returncode != 0


def test_workload_pods_follow_rollouts(kube_cli_module: KubeCLI, ns: str, cluster_backend: str) -> None:
    cli = kube_cli_module
    apply(cli, ns, DEPLOYMENT.replace("TAG", "1"))
    cli.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=20s")
    cli.kubectl("wait", "--for=condition=Ready", "pods", "-l", "app=web", "-n", ns, "--timeout=10s")
    first = get(cli, ns, "pods", "-l", "app=web")["items"]
    assert len(first) == 2 and {p["status"]["phase"] for p in first} == {"Running"}
    # kubesim synthesises a log naming the entrypoint; kwok's server serves one fixed line for every pod.
    expected = POD_LOG_LINE if cluster_backend == "kube" else "runs: <image entrypoint>"
    assert expected in cli.kubectl("logs", "deployment/web", "-c", "web", "-n", ns).stdout
    apply(cli, ns, DEPLOYMENT.replace("TAG", "2"))
    cli.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=20s")
    second = get(cli, ns, "pods", "-l", "app=web")["items"]
    assert len(second) == 2
    assert {p["metadata"]["name"] for p in second}.isdisjoint(p["metadata"]["name"] for p in first)
    assert {p["spec"]["containers"][0]["image"] for p in second} == {"nginx:2"}
    sts = DEPLOYMENT.replace("TAG", "1").replace("kind: Deployment", "kind: StatefulSet").replace(
        "name: web", "name: db").replace("{app: web}", "{app: db}")
    apply(cli, ns, sts)
    cli.kubectl("rollout", "status", "statefulset/db", "-n", ns, "--timeout=20s")
    names = sorted(p["metadata"]["name"] for p in get(cli, ns, "pods", "-l", "app=db")["items"])
    assert names == ["db-0", "db-1"]
    cli.kubectl("delete", "deployment", "web", "-n", ns, "--wait")
    wait = cli.kubectl("wait", "--for=delete", "pods", "-l", "app=web", "-n", ns, "--timeout=10s", check=False)
    assert wait.returncode == 0 or get(cli, ns, "pods", "-l", "app=web")["items"] == []


def test_everything_is_allowed(kube_cli_module: KubeCLI) -> None:
    assert kube_cli_module.kubectl("auth", "can-i", "delete", "secrets", "-A").stdout.strip() == "yes"
    rules = kube_cli_module.kubectl("auth", "can-i", "--list").stdout
    assert "*.*" in rules
