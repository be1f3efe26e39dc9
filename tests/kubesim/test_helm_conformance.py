"""The real helm v4 binary against the sandbox: install/upgrade/history/rollback/uninstall/list/
status, server-side and client-side apply, --wait, --rollback-on-failure, hooks, CRDs, speed.

One sandbox per module; every test works in its own namespace so tests stay independent.
"""

from __future__ import annotations

import base64
import gzip
import json
import time
from pathlib import Path
from typing import Any

import pytest

from kubesim.testing import KubeCLI, RunningSandbox

pytestmark = pytest.mark.helm
CHARTS = Path(__file__).parent / "charts"
APP, HOOKS, CRD = str(CHARTS / "app"), str(CHARTS / "hooks"), str(CHARTS / "crd")


def get(cli: KubeCLI, *args: str) -> Any:
    return json.loads(cli.kubectl("get", *args, "-o", "json", "--show-managed-fields").stdout)


def history(cli: KubeCLI, release: str, ns: str) -> list[dict[str, Any]]:
    return json.loads(cli.helm("history", release, "-n", ns, "-o", "json").stdout)  # type: ignore[no-any-return]


def test_install_with_server_side_apply_creates_every_object(kube_cli_module: KubeCLI) -> None:
    cli = kube_cli_module
    cli.helm("install", "web", APP, "-n", "ssa", "--create-namespace", "--wait", "--timeout", "30s")
    deploy = get(cli, "deployment", "web", "-n", "ssa")
    assert deploy["status"]["availableReplicas"] == 1
    assert deploy["status"]["observedGeneration"] == deploy["metadata"]["generation"]
    assert any(f["manager"] == "helm" and f["operation"] == "Apply" for f in deploy["metadata"]["managedFields"])
    assert get(cli, "configmap", "web-config", "-n", "ssa")["data"] == {"message": "hello"}
    assert get(cli, "service", "web", "-n", "ssa")["spec"]["clusterIP"].startswith("10.96.")
    secret = get(cli, "secret", "sh.helm.release.v1.web.v1", "-n", "ssa")
    assert secret["type"] == "helm.sh/release.v1"
    assert secret["metadata"]["labels"]["status"] == "deployed"
    status = json.loads(cli.helm("status", "web", "-n", "ssa", "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"


def test_upgrade_history_rollback(kube_cli_module: KubeCLI) -> None:
    cli = kube_cli_module
    cli.helm("install", "web", APP, "-n", "roll", "--create-namespace", "--wait")
    cli.helm("upgrade", "--install", "web", APP, "-n", "roll", "--wait", "--labels",
             "deploy-manager.io/digest=abc123,deploy-manager.io/commit=c0ffee", "--set",
             "message=second,image=registry.example/app:2.0")
    record = get(cli, "secret", "sh.helm.release.v1.web.v2", "-n", "roll")["metadata"]["labels"]
    assert record["deploy-manager.io/digest"] == "abc123" and record["deploy-manager.io/commit"] == "c0ffee"
    listed = get(cli, "secrets", "-n", "roll", "-l", "owner=helm,deploy-manager.io/digest=abc123")["items"]
    assert [s["metadata"]["name"] for s in listed] == ["sh.helm.release.v1.web.v2"]
    deploy = get(cli, "deployment", "web", "-n", "roll")
    assert deploy["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/app:2.0"
    assert get(cli, "configmap", "web-config", "-n", "roll")["data"]["message"] == "second"
    assert len(get(cli, "replicasets", "-n", "roll", "-l", "app=web")["items"]) == 2

    cli.helm("rollback", "web", "1", "-n", "roll", "--wait")
    assert get(cli, "configmap", "web-config", "-n", "roll")["data"]["message"] == "hello"
    deploy = get(cli, "deployment", "web", "-n", "roll")
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/app:1.0"
    assert deploy["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert [(h["revision"], h["status"]) for h in history(cli, "web", "roll")] == [
        (1, "superseded"), (2, "superseded"), (3, "deployed")]


def test_unchanged_upgrade_is_not_a_rollout(kube_cli_module: KubeCLI) -> None:
    cli = kube_cli_module
    cli.helm("install", "same", APP, "-n", "same", "--create-namespace", "--wait")
    before = get(cli, "deployment", "same", "-n", "same")
    cli.helm("upgrade", "same", APP, "-n", "same", "--wait", "--set", "replicas=2")
    after = get(cli, "deployment", "same", "-n", "same")
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    assert after["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert after["status"]["readyReplicas"] == 2


def test_list_all_namespaces_and_uninstall(kube_cli_module: KubeCLI) -> None:
    cli = kube_cli_module
    cli.helm("install", "one", APP, "-n", "list-a", "--create-namespace")
    cli.helm("install", "two", APP, "-n", "list-b", "--create-namespace")
    listed = json.loads(cli.helm("list", "-A", "-o", "json").stdout)
    mine = {(r["name"], r["namespace"], r["status"]) for r in listed if r["namespace"].startswith("list-")}
    assert mine == {("one", "list-a", "deployed"), ("two", "list-b", "deployed")}

    cli.helm("uninstall", "one", "-n", "list-a", "--wait")
    assert get(cli, "all,configmaps,secrets", "-n", "list-a")["items"] == [] or all(
        i["kind"] not in ("Deployment", "Service", "Secret") and not i["metadata"]["name"].startswith("one")
        for i in get(cli, "all,configmaps,secrets", "-n", "list-a")["items"])
    names = [r["name"] for r in json.loads(cli.helm("list", "-A", "-o", "json").stdout)]
    assert "one" not in names and "two" in names


def test_client_side_apply(kube_cli_module: KubeCLI) -> None:
    cli = kube_cli_module
    cli.helm("install", "csa", APP, "-n", "csa", "--create-namespace", "--server-side=false", "--wait")
    deploy = get(cli, "deployment", "csa", "-n", "csa")
    assert all(f["operation"] != "Apply" for f in deploy["metadata"].get("managedFields", []))
    cli.helm("upgrade", "csa", APP, "-n", "csa", "--server-side=false", "--wait", "--set",
             "message=patched,replicas=3")
    assert get(cli, "configmap", "csa-config", "-n", "csa")["data"]["message"] == "patched"
    deploy = get(cli, "deployment", "csa", "-n", "csa")
    assert deploy["spec"]["replicas"] == 3 and deploy["status"]["availableReplicas"] == 3
    # strategic merge kept the container list merged by name, not replaced by something else
    assert [c["name"] for c in deploy["spec"]["template"]["spec"]["containers"]] == ["app"]
    # switching to server-side apply: helm hands its Update field ownership over to Apply first
    cli.helm("upgrade", "csa", APP, "-n", "csa", "--server-side=true", "--wait", "--set", "message=ssa")
    configmap = get(cli, "configmap", "csa-config", "-n", "csa")
    assert configmap["data"]["message"] == "ssa"
    assert [(f["manager"], f["operation"]) for f in configmap["metadata"]["managedFields"]] == [("helm", "Apply")]


def test_rollback_on_failure_with_never_ready_deployment(kube_cli_module: KubeCLI) -> None:
    cli = kube_cli_module
    cli.helm("install", "flaky", APP, "-n", "flaky", "--create-namespace", "--wait")
    failed = cli.helm("upgrade", "flaky", APP, "-n", "flaky", "--rollback-on-failure", "--timeout", "2s",
                      "--set", "neverReady=true,message=broken", check=False)
    assert failed.returncode != 0
    assert "not ready" in failed.stderr or "deadline" in failed.stderr
    statuses = [h["status"] for h in history(cli, "flaky", "flaky")]
    assert statuses == ["superseded", "failed", "deployed"]
    assert get(cli, "configmap", "flaky-config", "-n", "flaky")["data"]["message"] == "hello"
    template = get(cli, "deployment", "flaky", "-n", "flaky")["spec"]["template"]
    assert "kubesim.io/never-ready" not in template["metadata"].get("annotations", {})


def test_failed_install_with_rollback_on_failure_uninstalls(kube_cli_module: KubeCLI) -> None:
    cli = kube_cli_module
    cli.kubectl("create", "namespace", "doomed")
    failed = cli.helm("install", "doomed", APP, "-n", "doomed", "--rollback-on-failure", "--timeout", "2s",
                      "--set", "neverReady=true", check=False)
    assert failed.returncode != 0
    assert cli.kubectl("get", "deployment", "doomed", "-n", "doomed", check=False).returncode != 0
    assert get(cli, "secrets", "-n", "doomed", "-l", "owner=helm")["items"] == []


def test_progress_deadline_fails_the_wait_early(kube_cli_module: KubeCLI) -> None:
    cli = kube_cli_module
    start = time.monotonic()
    failed = cli.helm("install", "late", APP, "-n", "late", "--create-namespace", "--wait", "--timeout", "60s",
                      "--set", "neverReady=true,progressDeadlineSeconds=1", check=False)
    assert failed.returncode != 0 and "Progress deadline exceeded" in failed.stderr
    assert time.monotonic() - start < 10


def test_hooks_pre_install_and_post_upgrade(kube_cli_module: KubeCLI) -> None:
    cli = kube_cli_module
    cli.helm("install", "hk", HOOKS, "-n", "hooks", "--create-namespace", "--wait")
    init = get(cli, "job", "hk-db-init", "-n", "hooks")
    assert {c["type"] for c in init["status"]["conditions"] if c["status"] == "True"} >= {"Complete"}
    cli.helm("upgrade", "hk", HOOKS, "-n", "hooks", "--wait", "--set", "image=registry.example/app:2.0")
    migrate = get(cli, "job", "hk-migrate", "-n", "hooks")
    assert migrate["status"]["succeeded"] == 1
    assert migrate["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/app:2.0"
    hooks = json.loads(cli.helm("status", "hk", "-n", "hooks", "-o", "json").stdout)["hooks"]
    assert {h["name"] for h in hooks} == {"hk-db-init", "hk-migrate"}

    failed = cli.helm("upgrade", "hk", HOOKS, "-n", "hooks", "--wait", "--timeout", "20s", "--set",
                      "failUpgradeHook=true", check=False)
    assert failed.returncode != 0 and "hk-migrate" in failed.stderr
    assert history(cli, "hk", "hooks")[-1]["status"] == "failed"


def test_crd_chart(kube_cli_module: KubeCLI) -> None:
    cli = kube_cli_module
    cli.helm("install", "wd", CRD, "-n", "crd", "--create-namespace", "--wait")
    widget = get(cli, "widgets", "wd-widget", "-n", "crd")
    assert widget["apiVersion"] == "example.com/v1" and widget["spec"] == {"size": 3}
    cli.helm("upgrade", "wd", CRD, "-n", "crd", "--set", "size=5")
    assert get(cli, "wd", "wd-widget", "-n", "crd")["spec"]["size"] == 5
    table = cli.kubectl("get", "widgets", "-n", "crd").stdout.split()
    assert table == ["NAME", "SIZE", "wd-widget", "5"]  # the CRD's additionalPrinterColumns
    cli.helm("uninstall", "wd", "-n", "crd")
    assert get(cli, "widgets", "-n", "crd")["items"] == []
    get(cli, "crd", "widgets.example.com")  # helm never deletes what crds/ installed


def test_install_speed_and_request_counts(kube_cli_module: KubeCLI, sandbox_module: RunningSandbox) -> None:
    """A ~15-object release installs in about a second with the default readiness delay."""
    cli = kube_cli_module
    cli.kubectl("create", "namespace", "speed")
    sandbox_module.reset_stats()
    start = time.monotonic()
    cli.helm("install", "big", APP, "-n", "speed", "--wait", "--set", "extraConfigMaps=12")
    elapsed = time.monotonic() - start
    stats = sandbox_module.stats()
    assert len(get(cli, "configmaps", "-n", "speed", "-l", "!nothing")["items"]) >= 13
    assert stats["by_resource"]["configmaps"]["patch"] == 13  # one apply per ConfigMap
    assert stats["writes"] >= 16
    print(f"helm install of 15 objects --wait: {elapsed:.2f}s, {stats['requests']} requests")
    assert elapsed < 3.0


@pytest.mark.kubesim_only("writes 3,000 release Secrets straight into kubesim's store")
def test_thousands_of_release_secrets_list_quickly(kube_cli_module: KubeCLI, sandbox_module: RunningSandbox) -> None:
    cli = kube_cli_module
    cli.helm("install", "seed", APP, "-n", "many", "--create-namespace")
    seed = get(cli, "secret", "sh.helm.release.v1.seed.v1", "-n", "many")
    api = sandbox_module.state.api
    from kubesim.api import Target

    rt = sandbox_module.state.registry.lookup("", "v1", "secrets")
    assert rt is not None
    record = json.loads(gzip.decompress(base64.b64decode(base64.b64decode(seed["data"]["release"]))))
    for i in range(3000):  # in-process: the point is listing speed, not 3000 HTTP creates
        record["name"] = f"r{i}"
        payload = base64.b64encode(base64.b64encode(gzip.compress(json.dumps(record).encode()))).decode()
        body = {"apiVersion": "v1", "kind": "Secret", "type": seed["type"], "data": {"release": payload},
                "metadata": {"name": f"sh.helm.release.v1.r{i}.v1", "labels": {
                    **seed["metadata"]["labels"], "name": f"r{i}"}}}
        api.create(Target(rt, "many"), body, {})
    start = time.monotonic()
    listed = json.loads(cli.helm("list", "-n", "many", "-o", "json", "--max", "5000").stdout)
    elapsed = time.monotonic() - start
    assert len(listed) == 3001
    print(f"helm list over 3001 release Secrets: {elapsed:.2f}s")
    assert elapsed < 10


def test_helm_test_runs_test_pods(kube_cli_module: KubeCLI, tmp_path: Path) -> None:
    cli = kube_cli_module
    chart = tmp_path / "tested"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: tested\nversion: 0.1.0\n")
    pod = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}-NAME\n  annotations:\n"
           "    helm.sh/hook: test\nEXTRA\nspec:\n  restartPolicy: Never\n  containers:\n"
           "    - {name: t, image: busybox, command: [wget, svc]}\n")
    (chart / "templates" / "ok.yaml").write_text(pod.replace("NAME", "ok").replace("EXTRA\n", ""))
    cli.helm("install", "tt", str(chart), "-n", "tests", "--create-namespace")
    out = cli.helm("test", "tt", "-n", "tests").stdout
    assert "tt-ok" in out and "Succeeded" in out
    failing = pod.replace("NAME", "bad").replace("EXTRA", '    kubesim.io/fail: "true"')
    (chart / "templates" / "bad.yaml").write_text(failing)
    cli.helm("upgrade", "tt", str(chart), "-n", "tests")
    failed = cli.helm("test", "tt", "-n", "tests", check=False)
    assert failed.returncode != 0 and "tt-bad" in failed.stdout + failed.stderr


def test_chart_with_an_unknown_field_fails_like_on_a_cluster(kube_cli_module: KubeCLI, tmp_path: Path) -> None:
    cli = kube_cli_module
    chart = tmp_path / "typo"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: typo\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\ndata: {a: b}\ndatta: {c: d}\n")
    failed = cli.helm("install", "typo", str(chart), "-n", "typo", "--create-namespace", check=False)
    assert failed.returncode != 0 and "datta" in failed.stderr
    assert cli.kubectl("get", "configmap", "typo", "-n", "typo", check=False).returncode != 0
