"""`ObjectsApi` on the sandbox: a kind's REST path from the table or one cached discovery request, one list per
(kind, namespace) without helm's release records, and a server-side apply as a given field manager."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from deploy_manager.kube.client import KubeClient
from deploy_manager.kube.objects import ObjectsApi
from deploy_manager.models.errors import KubeNotFound

pytestmark = pytest.mark.helm


def test_paths_lists_and_apply(sandbox: Any, kube_cli: Any, tmp_path: Path) -> None:
    api = ObjectsApi(KubeClient(kubeconfig=Path(sandbox.kubeconfig)))
    assert api.resource("v1", "ConfigMap") == ("configmaps", True) and api.requests == 0  # from the table
    assert api.resource("apps/v1", "ControllerRevision") == ("controllerrevisions", True)
    assert api.requests == 1  # one discovery request for apps/v1 ...
    assert api.resource("apps/v1", "ControllerRevision") == ("controllerrevisions", True) and api.requests == 1
    with pytest.raises(KubeNotFound):
        api.resource("apps/v1", "NoSuchKind")
    assert api.collection_path("rbac.authorization.k8s.io/v1", "ClusterRole", "") == (
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        False,
    )

    kube_cli.kubectl("create", "namespace", "objs")
    kube_cli.kubectl("-n", "objs", "create", "secret", "generic", "mine", "--from-literal=a=b")
    kube_cli.kubectl("-n", "objs", "create", "secret", "generic", "sh.helm.release.v1.x.v1", "--from-literal=r=x")
    kube_cli.kubectl("-n", "objs", "label", "secret", "sh.helm.release.v1.x.v1", "owner=helm")
    before = api.requests
    names = sorted(s["metadata"]["name"] for s in api.list("v1", "Secret", "objs"))
    assert names == ["mine"] and api.requests == before + 1  # helm's release records are not listed

    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}
    api.apply(cm, "objs", field_manager="helm")
    kube_cli.kubectl("-n", "objs", "patch", "configmap", "c", "-p", '{"data": {"k": "changed"}}')
    api.apply(cm, "objs", field_manager="helm")  # forced: the conflict with kubectl's field is taken back
    live = json.loads(
        kube_cli.kubectl("-n", "objs", "get", "configmap", "c", "-o", "json", "--show-managed-fields").stdout
    )
    assert live["data"] == {"k": "v"}
    managers = {m["manager"] for m in live["metadata"].get("managedFields") or []}
    assert "helm" in managers
