"""--state-file: a restarted sandbox keeps its objects (and helm its releases)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import pytest

from kubesim.persistence import StateFile
from kubesim.store import Store
from kubesim.testing import KubeCLI, start_sandbox

APP = str(Path(__file__).parent / "charts" / "app")


@pytest.mark.helm
def test_restart_keeps_releases_and_objects(tmp_path: Path, helm_bin: Path, kubectl_bin: Path) -> None:
    state = tmp_path / "state.json"
    with start_sandbox(tmp_path / "one", state_file=state) as first:
        cli = KubeCLI(helm_bin, kubectl_bin, first.kubeconfig, tmp_path / "home")
        cli.helm("install", "keep", APP, "-n", "default", "--wait")
        rv = first.stats()["resourceVersion"]
    assert state.exists()
    with start_sandbox(tmp_path / "two", state_file=state) as second:
        cli = KubeCLI(helm_bin, kubectl_bin, second.kubeconfig, tmp_path / "home")
        assert second.stats()["resourceVersion"] == rv
        releases = json.loads(cli.helm("list", "-n", "default", "-o", "json").stdout)
        assert [(r["name"], r["status"]) for r in releases] == [("keep", "deployed")]
        cli.helm("upgrade", "keep", APP, "-n", "default", "--wait", "--set", "message=after-restart")
        deploy = json.loads(cli.kubectl("get", "deployment", "keep", "-n", "default", "-o", "json").stdout)
        assert deploy["status"]["availableReplicas"] == 1
        with httpx.Client(base_url=second.url) as client:
            cm = client.get("/api/v1/namespaces/default/configmaps/keep-config").json()
        assert cm["data"]["message"] == "after-restart"
        assert int(cm["metadata"]["resourceVersion"]) > rv


def test_old_resource_version_is_gone_after_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with start_sandbox(tmp_path, state_file=state) as first, httpx.Client(base_url=first.url) as client:
        client.post("/api/v1/namespaces/default/configmaps",
                    json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    with start_sandbox(tmp_path, state_file=state) as second, httpx.Client(base_url=second.url) as client:
        r = client.get("/api/v1/namespaces/default/configmaps", params={"watch": "1", "resourceVersion": "1"})
        event = json.loads(r.text.splitlines()[0])
        assert event["type"] == "ERROR" and event["object"]["code"] == 410


def test_corrupt_state_file_is_an_error(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text("{not json")
    with pytest.raises(RuntimeError, match="cannot load sandbox state"):
        StateFile(state, Store()).load()


def test_saves_are_debounced_and_atomic(tmp_path: Path) -> None:
    store = Store()
    saver = StateFile(tmp_path / "s.json", store, delay=0.05)
    saver.start()
    for i in range(50):
        store.create(("", "configmaps"), {"metadata": {"name": f"c{i}", "namespace": "default"}})
    saver.stop()
    snapshot = json.loads((tmp_path / "s.json").read_text())
    assert snapshot["resourceVersion"] == 50 and len(snapshot["objects"]) == 50
    assert not list(tmp_path.glob(".*.tmp"))


def test_restart_keeps_serving_custom_resources(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"kind": "Widget", "plural": "widgets"},
                    "versions": [{"name": "v1", "served": True, "storage": True}]}}
    widgets = "/apis/example.com/v1/namespaces/default/widgets"
    with start_sandbox(tmp_path, state_file=state) as first, httpx.Client(base_url=first.url) as client:
        assert client.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd).status_code == 201
        assert client.post(widgets, json={"apiVersion": "example.com/v1", "kind": "Widget",
                                          "metadata": {"name": "w"}, "spec": {"size": 1}}).status_code == 201
    with start_sandbox(tmp_path, state_file=state) as second, httpx.Client(base_url=second.url) as client:
        assert client.get(f"{widgets}/w").json()["spec"] == {"size": 1}
        assert "apis/example.com/v1" in client.get("/openapi/v3").json()["paths"]


def test_concurrent_saves_never_tear_the_file(tmp_path: Path) -> None:
    store = Store()
    for i in range(300):
        store.create(("", "configmaps"), {"metadata": {"name": f"c{i}", "namespace": "default"},
                                          "data": {"k": "v" * 500}})
    saver = StateFile(tmp_path / "s.json", store)
    threads = [threading.Thread(target=saver.save) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(json.loads((tmp_path / "s.json").read_text())["objects"]) == 300
