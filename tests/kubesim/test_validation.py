"""Validation rules and defaulting, with the apiserver's field paths and wording."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from kubesim.defaults import ClusterIPAllocator, apply_defaults
from kubesim.validation import name_causes, object_causes, update_causes


@pytest.mark.parametrize(("kind", "name", "ok"), [
    ("ConfigMap", "my.config-1", True),
    ("ConfigMap", "My_Config", False),
    ("ConfigMap", "x" * 254, False),
    ("Service", "web.front", False),  # Services need DNS labels
    ("Namespace", "team-a", True),
    ("ClusterRole", "system:controller:thing", True),  # RBAC names are path segments
    ("Role", "a/b", False),
])
def test_names(kind: str, name: str, ok: bool) -> None:
    assert (name_causes(kind, name) == []) is ok


def deployment(**spec: Any) -> dict[str, Any]:
    base = {"selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    return {"metadata": {"name": "d"}, "spec": {**base, **spec}}


def test_workload_rules() -> None:
    assert object_causes("Deployment", deployment()) == []
    mismatch = deployment(template={"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [
        {"name": "c", "image": "i"}]}})
    assert [c[0] for c in object_causes("Deployment", mismatch)] == ["spec.template.metadata.labels"]
    no_containers = deployment(template={"metadata": {"labels": {"app": "a"}}, "spec": {}})
    assert [c[0] for c in object_causes("Deployment", no_containers)] == ["spec.template.spec.containers"]
    assert [c[0] for c in object_causes("Deployment", deployment(replicas=-1))] == ["spec.replicas"]


def test_immutable_fields_on_update() -> None:
    old_job = {"metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "1"}]}}}}
    new_job = {"metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "2"}]}}}}
    assert [c[0] for c in update_causes("Job", old_job, new_job)] == ["spec.template"]
    frozen = {"metadata": {"name": "c"}, "immutable": True, "data": {"a": "1"}}
    assert update_causes("ConfigMap", frozen, {**frozen, "data": {"a": "2"}})[0][0] == "data"
    assert update_causes("Deployment", deployment(), deployment(selector={"matchLabels": {"app": "z"}},
                                                                  template=deployment()["spec"]["template"]))


def test_defaults() -> None:
    ips = ClusterIPAllocator()
    svc: dict[str, Any] = {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}
    apply_defaults("", "Service", svc, None, ips)
    assert svc["spec"]["type"] == "ClusterIP" and svc["spec"]["ports"][0] == {"port": 80, "protocol": "TCP",
                                                                               "targetPort": 80}
    again: dict[str, Any] = {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 81}]}}
    apply_defaults("", "Service", again, svc, ips)
    assert again["spec"]["clusterIP"] == svc["spec"]["clusterIP"]  # an update keeps the allocated IP
    node: dict[str, Any] = {"metadata": {"name": "n"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}
    apply_defaults("", "Service", node, None, ips)
    allocated = node["spec"]["ports"][0]["nodePort"]
    assert 30000 <= allocated <= 32767
    reapplied: dict[str, Any] = {"metadata": {"name": "n"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}
    apply_defaults("", "Service", reapplied, node, ips)
    assert reapplied["spec"]["ports"][0]["nodePort"] == allocated
    secret: dict[str, Any] = {"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}}
    apply_defaults("", "Secret", secret, None, ips)
    assert "stringData" not in secret and base64.b64decode(secret["data"]["password"]) == b"hunter2"
    job: dict[str, Any] = {"metadata": {"name": "j", "uid": "u"}, "spec": {"template": {"spec": {"containers": []}}}}
    apply_defaults("batch", "Job", job, None, ips)
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}}
    assert job["spec"]["template"]["metadata"]["labels"]["job-name"] == "j"
    deploy = deployment()
    apply_defaults("apps", "Deployment", deploy, None, ips)
    assert deploy["spec"]["strategy"]["type"] == "RollingUpdate" and deploy["spec"]["revisionHistoryLimit"] == 10


def test_configmap_and_secret_size_limit() -> None:
    big = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "x" * (1024 * 1024)}}
    assert [c[0] for c in object_causes("ConfigMap", big)] == ["data"]
    fits = {"kind": "Secret", "metadata": {"name": "s"},
            "data": {"release": base64.b64encode(b"x" * 1000 * 1000).decode()}}
    assert object_causes("Secret", fits) == []
