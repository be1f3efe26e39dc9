"""Object semantics over real HTTP: status codes and Status bodies, resourceVersion concurrency,
generation, selectors, paging, dry runs, finalizers, delete propagation, namespaces, protobuf."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kubesim.testing import RunningSandbox, wait_for

FIXTURES = Path(__file__).parent / "fixtures"
CM = "/api/v1/namespaces/default/configmaps"
DEPLOY = "/apis/apps/v1/namespaces/default/deployments"


@pytest.fixture
def client(sandbox: RunningSandbox) -> Iterator[httpx.Client]:
    with sandbox.http_client() as c:
        yield c


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"app": name}},
            "data": data}


def deployment(name: str, image: str = "nginx:1", replicas: int = 1) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}


def assert_status(response: httpx.Response, code: int, reason: str) -> dict[str, Any]:
    assert response.status_code == code, response.text
    body = response.json()
    assert body["kind"] == "Status" and body["status"] == "Failure"
    assert body["code"] == code and body["reason"] == reason
    return body  # type: ignore[no-any-return]


@pytest.mark.kubesim_only("difference listed in kubesim: DELETE answers the object, not a Status")
def test_create_get_update_delete_lifecycle(client: httpx.Client) -> None:
    created = client.post(CM, json=configmap("a", k="1"))
    assert created.status_code == 201
    meta = created.json()["metadata"]
    assert meta["uid"] and meta["creationTimestamp"] and meta["namespace"] == "default"
    got = client.get(f"{CM}/a").json()
    assert got["data"] == {"k": "1"} and got["metadata"]["resourceVersion"] == meta["resourceVersion"]
    got["data"]["k"] = "2"
    updated = client.put(f"{CM}/a", json=got)
    assert updated.status_code == 200
    assert int(updated.json()["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    deleted = client.delete(f"{CM}/a")
    assert deleted.status_code == 200 and deleted.json()["metadata"]["name"] == "a"
    assert_status(client.get(f"{CM}/a"), 404, "NotFound")


def test_stale_update_conflicts_and_noop_keeps_resource_version(client: httpx.Client) -> None:
    first = client.post(CM, json=configmap("c", k="1")).json()
    fresh = json.loads(json.dumps(first))
    fresh["data"]["k"] = "2"
    assert client.put(f"{CM}/c", json=fresh).status_code == 200
    first["data"]["k"] = "3"
    body = assert_status(client.put(f"{CM}/c", json=first), 409, "Conflict")
    assert "the object has been modified" in body["message"]
    current = client.get(f"{CM}/c").json()
    again = client.put(f"{CM}/c", json=current).json()
    assert again["metadata"]["resourceVersion"] == current["metadata"]["resourceVersion"]


@pytest.mark.kubesim_only("difference listed in kubesim: an unknown group's 404 is JSON, not plain text")
def test_bad_input_gets_apiserver_errors(client: httpx.Client) -> None:
    assert_status(client.post(CM, content=b"{not json", headers={"content-type": "application/json"}),
                  400, "BadRequest")
    assert_status(client.post(CM, json={"apiVersion": "apps/v1", "metadata": {"name": "x"}}), 400, "BadRequest")
    assert_status(client.post(CM, json=[1, 2]), 400, "BadRequest")
    assert_status(client.post(CM, json={**configmap("x"), "kind": "Secret"}), 400, "BadRequest")
    body = assert_status(client.post(CM, json=configmap("Not_Valid")), 422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    wrong_ns = configmap("x")
    wrong_ns["metadata"]["namespace"] = "other"
    assert_status(client.post(CM, json=wrong_ns), 400, "BadRequest")
    assert_status(client.post("/api/v1/namespaces/nope/configmaps", json=configmap("x")), 404, "NotFound")
    assert_status(client.get("/api/v1/namespaces/default/frobnicators"), 404, "NotFound")
    assert_status(client.get("/apis/nothere.io/v1/things"), 404, "NotFound")
    client.post(CM, json=configmap("dup"))
    assert_status(client.post(CM, json=configmap("dup")), 409, "AlreadyExists")
    assert_status(client.patch(f"{CM}/dup", content=b"{}", headers={"content-type": "text/plain"}),
                  415, "UnsupportedMediaType")
    assert_status(client.get(f"{CM}?labelSelector=a%20in%20(b"), 400, "BadRequest")
    assert_status(client.get(f"{CM}?fieldSelector=spec.nothing%3Dx"), 400, "BadRequest")
    invalid = deployment("d")
    invalid["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    body = assert_status(client.post(DEPLOY, json=invalid), 422, "Invalid")
    assert "does not match" in body["message"]
    assert_status(client.patch(f"{CM}/dup", content=b'[{"op":"test","path":"/data/x","value":"y"}]',
                               headers={"content-type": "application/json-patch+json"}), 422, "Invalid")


@pytest.mark.kubesim_only("difference listed in kubesim: a new workload has no status, not an empty one")
def test_generation_and_status_subresource(client: httpx.Client) -> None:
    created = client.post(DEPLOY, json=deployment("g")).json()
    assert created["metadata"]["generation"] == 1 and "status" not in created
    merge = {"content-type": "application/merge-patch+json"}
    labelled = client.patch(f"{DEPLOY}/g", content=b'{"metadata":{"labels":{"x":"y"}}}', headers=merge).json()
    assert labelled["metadata"]["generation"] == 1
    scaled = client.patch(f"{DEPLOY}/g", content=b'{"spec":{"replicas":3}}', headers=merge).json()
    assert scaled["metadata"]["generation"] == 2
    ready = wait_for(lambda: (d := client.get(f"{DEPLOY}/g").json())["status"].get("readyReplicas") == 3 and d)
    assert ready["status"]["observedGeneration"] == 2
    # writes to the main resource cannot change status; writes to /status change only status
    ready["status"]["readyReplicas"] = 99
    ready["spec"]["replicas"] = 3
    assert client.put(f"{DEPLOY}/g", json=ready).json()["status"]["readyReplicas"] == 3
    current = client.get(f"{DEPLOY}/g").json()
    current["status"]["readyReplicas"] = 7
    current["spec"]["replicas"] = 9
    via_status = client.put(f"{DEPLOY}/g/status", json=current).json()
    assert via_status["status"]["readyReplicas"] == 7 and via_status["spec"]["replicas"] == 3


@pytest.mark.kubesim_only("difference listed in kubesim: no kube-root-ca.crt ConfigMap in every namespace")
def test_list_selectors_and_paging(client: httpx.Client) -> None:
    for i in range(7):
        cm = configmap(f"p{i}")
        cm["metadata"]["labels"] = {"n": str(i), "parity": "even" if i % 2 == 0 else "odd"}
        client.post(CM, json=cm)
    def names(selector: str) -> list[str]:
        return [i["metadata"]["name"] for i in client.get(CM, params={"labelSelector": selector}).json()["items"]]

    assert names("parity=even,n!=2") == ["p0", "p4", "p6"]
    assert names("n in (1,3),parity") == ["p1", "p3"]
    assert names("n notin (0,1,2,3,4,5),!missing") == ["p6"]
    assert client.get(CM, params={"fieldSelector": "metadata.name=p5"}).json()["items"][0]["metadata"]["name"] == "p5"
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 3, "labelSelector": "n"}
    while True:
        page = client.get(CM, params=params).json()
        seen += [i["metadata"]["name"] for i in page["items"]]
        if not page["metadata"].get("continue"):
            break
        params["continue"] = page["metadata"]["continue"]
    assert seen == [f"p{i}" for i in range(7)]
    everywhere = client.get("/api/v1/configmaps", params={"labelSelector": "n=0"}).json()
    assert [i["metadata"]["namespace"] for i in everywhere["items"]] == ["default"]


def test_dry_run_changes_nothing(client: httpx.Client, sandbox: RunningSandbox, cluster_backend: str) -> None:
    # kubesim's one resourceVersion counter moves only with the test's writes; etcd's revision also moves
    # with every controller's, so the count is checked on kubesim only.
    rv = sandbox.stats()["resourceVersion"] if cluster_backend == "kubesim" else 0
    created = client.post(CM, params={"dryRun": "All"}, json=configmap("dry"))
    assert created.status_code == 201 and created.json()["metadata"]["uid"]
    assert client.get(f"{CM}/dry").status_code == 404
    client.post(CM, json=configmap("wet", k="1"))
    patched = client.patch(f"{CM}/wet", params={"dryRun": "All"}, content=b'{"data":{"k":"2"}}',
                           headers={"content-type": "application/merge-patch+json"})
    assert patched.json()["data"]["k"] == "2"
    assert client.get(f"{CM}/wet").json()["data"]["k"] == "1"
    assert client.delete(f"{CM}/wet", params={"dryRun": "All"}).status_code == 200
    assert client.get(f"{CM}/wet").status_code == 200
    if cluster_backend == "kubesim":
        assert sandbox.stats()["resourceVersion"] == rv + 1


def test_finalizers_hold_deletion(client: httpx.Client) -> None:
    cm = configmap("fin")
    cm["metadata"]["finalizers"] = ["example.com/hold"]
    client.post(CM, json=cm)
    held = client.delete(f"{CM}/fin")
    assert held.status_code == 200 and held.json()["metadata"]["deletionTimestamp"]
    assert client.get(f"{CM}/fin").status_code == 200
    client.patch(f"{CM}/fin", content=b'{"metadata":{"finalizers":null}}',
                 headers={"content-type": "application/merge-patch+json"})
    assert client.get(f"{CM}/fin").status_code == 404


def test_delete_propagation(client: httpx.Client) -> None:
    owner = client.post(CM, json=configmap("owner")).json()
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    for name in ("dep1", "dep2"):
        cm = configmap(name)
        cm["metadata"]["ownerReferences"] = [ref]
        client.post(CM, json=cm)
    client.request("DELETE", f"{CM}/owner", json={"kind": "DeleteOptions", "apiVersion": "v1",
                                                  "propagationPolicy": "Orphan"})
    # kubesim orphans at once; the real garbage collector a moment later.
    orphan = wait_for(lambda: (o := client.get(f"{CM}/dep1").json()) and "ownerReferences" not in o["metadata"] and o,
                      timeout=30)
    assert "ownerReferences" not in orphan["metadata"]
    owner2 = client.post(CM, json=configmap("owner2")).json()
    cm = configmap("dep3")
    cm["metadata"]["ownerReferences"] = [{**ref, "name": "owner2", "uid": owner2["metadata"]["uid"]}]
    client.post(CM, json=cm)
    foreground = client.request("DELETE", f"{CM}/owner2", json={"propagationPolicy": "Foreground"})
    assert foreground.status_code in (200, 202)
    wait_for(lambda: client.get(f"{CM}/owner2").status_code == 404 and client.get(f"{CM}/dep3").status_code == 404,
             timeout=30)


def test_namespace_deletion_removes_content(client: httpx.Client) -> None:
    client.post("/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tmp"}})
    client.post("/api/v1/namespaces/tmp/configmaps", json=configmap("inside"))
    terminating = client.delete("/api/v1/namespaces/tmp").json()
    assert terminating["status"]["phase"] == "Terminating"
    wait_for(lambda: client.get("/api/v1/namespaces/tmp").status_code == 404, timeout=30)  # real: ~5 s
    assert client.get("/api/v1/namespaces/tmp/configmaps/inside").status_code == 404
    assert_status(client.delete("/api/v1/namespaces/default"), 403, "Forbidden")


def test_protobuf_bodies_from_helm(client: httpx.Client) -> None:
    for fixture in sorted(FIXTURES.glob("helm414_secret_*create*.pb"))[:1]:
        response = client.post("/api/v1/namespaces/default/secrets", content=fixture.read_bytes(),
                               headers={"content-type": "application/vnd.kubernetes.protobuf"})
        assert response.status_code == 201, response.text
        assert response.json()["type"] == "helm.sh/release.v1"
    assert_status(client.post("/api/v1/namespaces/default/secrets", content=b"k8s\x00\xff\xff",
                              headers={"content-type": "application/vnd.kubernetes.protobuf"}), 400, "BadRequest")


def test_server_side_apply_creates_and_reports_conflicts(client: httpx.Client) -> None:
    apply = {"content-type": "application/apply-patch+yaml"}
    body = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {k: one}\n"
    created = client.patch(f"{CM}/ssa", params={"fieldManager": "a", "force": "false"}, content=body, headers=apply)
    assert created.status_code == 201
    conflict = client.patch(f"{CM}/ssa", params={"fieldManager": "b"}, content=body.replace(b"one", b"two"),
                            headers=apply)
    body_json = assert_status(conflict, 409, "Conflict")
    assert body_json["details"]["causes"][0]["field"] == ".data.k"
    forced = client.patch(f"{CM}/ssa", params={"fieldManager": "b", "force": "true"},
                          content=body.replace(b"one", b"two"), headers=apply)
    assert forced.status_code == 200 and forced.json()["data"] == {"k": "two"}
    assert_status(client.patch(f"{CM}/ssa", content=body, headers=apply), 422, "Invalid")
    assert_status(client.patch(f"{CM}/other", params={"fieldManager": "a"}, content=body, headers=apply),
                  400, "BadRequest")


def test_watch_streams_events_from_a_resource_version(client: httpx.Client, sandbox: RunningSandbox) -> None:
    start_rv = client.get(CM).json()["metadata"]["resourceVersion"]
    client.post(CM, json=configmap("w1"))
    client.patch(f"{CM}/w1", content=b'{"data":{"a":"b"}}', headers={"content-type": "application/merge-patch+json"})
    client.delete(f"{CM}/w1")
    events = []
    with client.stream("GET", CM, params={"watch": "true", "resourceVersion": start_rv, "timeoutSeconds": "1"}) as r:
        for line in r.iter_lines():
            if line:
                events.append(json.loads(line))
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]
    assert all(e["object"]["kind"] == "ConfigMap" for e in events)


def test_watch_list_initial_events_then_bookmark(client: httpx.Client) -> None:
    client.post(CM, json=configmap("initial"))
    lines = []
    params = {"watch": "true", "sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan",
              "allowWatchBookmarks": "true", "timeoutSeconds": "1", "labelSelector": "app=initial"}
    with client.stream("GET", CM, params=params) as r:
        for line in r.iter_lines():
            if line:
                lines.append(json.loads(line))
    assert lines[0]["type"] == "ADDED" and lines[0]["object"]["metadata"]["name"] == "initial"
    assert lines[1]["type"] == "BOOKMARK"
    assert lines[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_discovery_documents(client: httpx.Client) -> None:
    assert client.get("/version").json()["minor"] == "35"
    assert client.get("/api").json()["versions"] == ["v1"]
    groups = {g["name"] for g in client.get("/apis").json()["groups"]}
    assert {"apps", "batch", "rbac.authorization.k8s.io", "policy", "coordination.k8s.io",
            "networking.k8s.io", "apiextensions.k8s.io"} <= groups
    core = {r["name"] for r in client.get("/api/v1").json()["resources"]}
    assert {"configmaps", "secrets", "services", "pods", "namespaces", "persistentvolumeclaims",
            "serviceaccounts"} <= core
    aggregated = client.get("/apis", headers={
        "accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"})
    assert aggregated.headers["content-type"].startswith("application/json;g=apidiscovery.k8s.io;v=v2")
    assert aggregated.json()["kind"] == "APIGroupDiscoveryList"
    assert client.get("/openapi/v3").json()["paths"]["apis/apps/v1"]["serverRelativeURL"].startswith(
        "/openapi/v3/apis/apps/v1?hash=")


def test_structural_validation(client: httpx.Client) -> None:
    typo = deployment("typo")
    typo["spec"]["replica"] = 2
    strict = assert_status(client.post(DEPLOY, params={"fieldValidation": "Strict"}, json=typo), 400, "BadRequest")
    assert strict["message"] == ('Deployment in version "v1" cannot be handled as a Deployment: '
                                 'strict decoding error: unknown field "spec.replica"')
    assert client.post(DEPLOY, json=typo).status_code == 201  # fieldValidation unset: tolerated
    wrong_type = deployment("wrong")
    wrong_type["spec"] = "x"
    body = assert_status(client.post(DEPLOY, json=wrong_type), 400, "BadRequest")
    assert "cannot be handled as a Deployment" in body["message"]
    patched = client.patch(f"{DEPLOY}/typo", content=b'{"spec":{"replicas":"three"}}',
                           headers={"content-type": "application/merge-patch+json"})
    assert assert_status(patched, 422, "Invalid")["message"].startswith(' "" is invalid: patch: Invalid value: ')
    no_image = deployment("noimage")
    del no_image["spec"]["template"]["spec"]["containers"][0]["name"]
    assert_status(client.post(DEPLOY, json=no_image), 422, "Invalid")


def test_custom_resources_follow_their_crd_schema(client: httpx.Client) -> None:
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced", "names": {"kind": "Widget", "plural": "widgets"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "properties": {"spec": {"type": "object", "required": ["size"],
                                                                  "properties": {
                                                                      "size": {"type": "integer", "minimum": 1},
                                                                      "port": {"x-kubernetes-int-or-string": True},
                                                                      "extra": {"type": "object",
                                                                                "x-kubernetes-preserve-unknown-fields":
                                                                                    True}}}}}}}]}}
    assert client.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd).status_code == 201
    widgets = "/apis/example.com/v1/namespaces/default/widgets"
    wait_for(lambda: client.get(widgets).status_code == 200, timeout=30)  # real: served once Established

    def widget(name: str, **spec: Any) -> dict[str, Any]:
        return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}

    ok = client.post(widgets, json=widget("ok", size=2, port="http", extra={"anything": [1]}, colour="red"))
    assert ok.status_code == 201 and ok.json()["spec"] == {"size": 2, "port": "http", "extra": {"anything": [1]}}
    strict = client.post(widgets, params={"fieldValidation": "Strict"}, json=widget("s", size=2, colour="red"))
    assert assert_status(strict, 400, "BadRequest")["message"] == (
        'Widget in version "v1" cannot be handled as a Widget: strict decoding error: unknown field "spec.colour"')
    body = assert_status(client.post(widgets, json=widget("bad", size="big")), 422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "spec.size"
    assert_status(client.post(widgets, json=widget("small", size=0)), 422, "Invalid")
    assert_status(client.post(widgets, json=widget("missing")), 422, "Invalid")
