"""The service's drift checks end to end: the real app over HTTP, real helm and kubectl on the sandbox.

`kubectl scale` behind the service's back shows in /releases (`drift`, `drifted`), in the metric
`deploy_manager_release_drifted{cluster,component}` and on the status page after the periodic check; with
`drift.mode: correct` the check triggers a `drift` run that corrects it without a new helm revision."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.api.test_integration import Remote, Running, remote, start  # noqa: F401  (fixtures)
from tests.corelib import commit, write
from tests.servicelib import wait_for

pytestmark = [pytest.mark.helm, pytest.mark.slow]


def kubectl(kube_cli: Any, repo: Remote, *args: str) -> str:
    return str(kube_cli.kubectl("-n", repo.namespace, *args).stdout)


def keystone_drifted(svc: Running, drifted: bool) -> dict[str, dict[str, Any]] | None:
    releases = svc.releases()
    return releases if releases["keystone"]["drifted"] is drifted else None


def set_drift(repo: Remote, component: str, drift: dict[str, Any]) -> None:
    path = repo.root / "values" / "dev" / "cluster.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["components"][component]["drift"] = drift
    write(path, yaml.safe_dump(spec, sort_keys=False))
    commit(repo.root, f"drift {component}")


def test_drift_shows_in_releases_metric_and_status_page(
    start: Callable[..., Running],  # noqa: F811
    remote: Remote,  # noqa: F811
    kube_cli_module: Any,
) -> None:
    svc = start(drift_interval_seconds=1)
    assert svc.queue.wait_idle(60)
    releases = wait_for(lambda: svc.releases() if svc.queue.drift_monitor.report else None)
    assert {r["drifted"] for r in releases.values()} == {False} and releases["keystone"]["drift"] == []
    kubectl(kube_cli_module, remote, "scale", "deployment", "keystone-api", "--replicas=3")
    releases = wait_for(lambda: keystone_drifted(svc, True), timeout=30)
    assert releases["keystone"]["drift"] == [
        {
            "kind": "Deployment",
            "namespace": remote.namespace,
            "name": "keystone-api",
            "paths": ["spec.replicas"],
            "missing": False,
        }
    ]
    assert releases["rabbitmq"]["drifted"] is False
    with svc.client() as c:
        metrics = c.get("/metrics").text
        page = c.get("/").text
        runs = c.get("/runs").json()
    assert re.search(r'deploy_manager_release_drifted\{cluster="dev",component="keystone"\} 1\.0', metrics)
    assert re.search(r'deploy_manager_release_drifted\{cluster="dev",component="rabbitmq"\} 0\.0', metrics)
    assert "DRIFTED: Deployment keystone-api: spec.replicas" in page
    assert all(r["trigger"] != "drift" for r in runs)  # mode detect: reported, not corrected


def test_mode_correct_is_corrected_by_a_drift_run(
    start: Callable[..., Running],  # noqa: F811
    remote: Remote,  # noqa: F811
    kube_cli_module: Any,
) -> None:
    set_drift(remote, "keystone", {"mode": "correct"})
    svc = start(drift_interval_seconds=1)
    assert svc.queue.wait_idle(60)
    kubectl(kube_cli_module, remote, "scale", "deployment", "keystone-api", "--replicas=3")

    def drift_run() -> dict[str, Any] | None:
        with svc.client() as c:
            found = [r for r in c.get("/runs").json() if r["trigger"] == "drift" and r["status"] == "succeeded"]
            return c.get(f"/runs/{found[0]['id']}").json() if found else None

    run = wait_for(drift_run, timeout=30)
    (step,) = [s for s in run["steps"] if s["action"] != "none"]
    assert step["component"] == "keystone" and step["action"] == "correct_drift" and step["status"] == "succeeded"
    assert f"re-applied Deployment {remote.namespace}/keystone-api: spec.replicas" in step["reasons"]
    live = json.loads(kubectl(kube_cli_module, remote, "get", "deployment", "keystone-api", "-o", "json"))
    assert live["spec"]["replicas"] == 1
    history = json.loads(kube_cli_module.helm("history", "keystone", "-n", remote.namespace, "-o", "json").stdout)
    assert [h["revision"] for h in history] == [1]
    releases = wait_for(lambda: keystone_drifted(svc, False), timeout=30)
    assert releases["keystone"]["revision"] == 1
