"""Routing and robustness: malformed requests of every shape get a 4xx Status, never a 500."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import httpx
import pytest

from kubesim.testing import RunningSandbox

pytestmark = pytest.mark.kubesim_only("kubesim's HTTP layer, probed by a raw unauthenticated client")

CM = "/api/v1/namespaces/default/configmaps"
DEPLOY = "/apis/apps/v1/namespaces/default/deployments"
BODIES = [b"", b"null", b"[]", b"1", b'"s"', b"{}", b'{"metadata": []}', b'{"metadata": {"name": 5}}',
          b'{"metadata": {"name": "a", "labels": []}}', b'{"metadata": {"name": "a", "labels": {"a": 5}}}',
          b'{"metadata": {"name": "a", "annotations": {"a": 5}}}', b'{"metadata": {"name": "a"}, "data": []}',
          b'{"metadata": {"name": "a", "namespace": 7}}', b'{"metadata": {"name": "a", "finalizers": "x"}}',
          b'{"metadata": {"name": "a", "ownerReferences": ["x"]}}', b'{"metadata": {"generateName": 3}}',
          b'{"apiVersion": 5, "kind": []}', b"\xff\xfe", b"k8s\x00garbage", b"a: [b", b'{"spec": {"template": 5}}',
          b'[{"op": "add"}]', b'[{"op": "replace", "path": "/metadata", "value": 5}]', b'{"metadata": null}']
CONTENT_TYPES = ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf",
                 "application/merge-patch+json", "application/json-patch+json",
                 "application/strategic-merge-patch+json", "application/apply-patch+yaml", "text/plain"]


@pytest.fixture(scope="module")
def client(sandbox_module: RunningSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox_module.url, timeout=10) as c:
        c.post(CM, json={"metadata": {"name": "t"}})
        c.post(DEPLOY, json={"metadata": {"name": "d"}, "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
        yield c


@pytest.mark.parametrize("path", [CM, DEPLOY, "/api/v1/namespaces", "/apis/batch/v1/namespaces/default/jobs",
                                  "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"])
def test_malformed_creates_are_4xx(client: httpx.Client, path: str) -> None:
    for body, content_type in itertools.product(BODIES, CONTENT_TYPES[:3]):
        r = client.post(path, content=body, headers={"content-type": content_type})
        assert r.status_code < 500, (body, content_type, r.text)
        if r.status_code >= 400:
            assert r.json()["kind"] == "Status"


@pytest.mark.parametrize("path", [f"{CM}/t", f"{DEPLOY}/d", f"{DEPLOY}/d/status", f"{DEPLOY}/d/scale",
                                  "/api/v1/namespaces/default"])
def test_malformed_writes_to_existing_objects_are_4xx(client: httpx.Client, path: str) -> None:
    for body in BODIES:
        for content_type in CONTENT_TYPES[3:]:
            r = client.patch(path, params={"fieldManager": "fuzz"}, content=body,
                             headers={"content-type": content_type})
            assert r.status_code < 500, (body, content_type, r.text)
        for method in ("PUT", "DELETE"):
            r = client.request(method, path, content=body, params={"dryRun": "All"},
                               headers={"content-type": "application/json"})
            assert r.status_code < 500, (method, body, r.text)


@pytest.mark.parametrize("query", ["limit=abc", "continue=zzz", "limit=-1", "labelSelector=%00", "fieldSelector=a",
                                   "watch=true&resourceVersion=abc", "watch=true&timeoutSeconds=abc"])
def test_malformed_queries_are_4xx(client: httpx.Client, query: str) -> None:
    assert client.get(f"{CM}?{query}").status_code < 500


def test_unknown_paths_and_methods(client: httpx.Client) -> None:
    assert client.get("/nope").status_code == 404
    assert client.post("/version").status_code == 405
    assert client.get("/api/v2/pods").status_code == 404
    assert client.get(f"{CM}/t/nosuchsub").status_code == 404
    assert client.get("/api/v1/namespaces/default/namespaces").status_code == 404
    assert client.get("/healthz").text == "ok"
