"""Drift of live objects against the manifest (pure), table-driven: only what the manifest sets is compared."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from deploy_manager.models.desired import DriftPolicy, IgnoreRule
from deploy_manager.planner.drift import MISSING_PATH, compare, object_drift, release_drift
from deploy_manager.planner.manifest_diff import ObjectKey

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "api", "labels": {"app": "api"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "api"}},
        "template": {
            "metadata": {"labels": {"app": "api"}, "annotations": {"checksum/config": "abc"}},
            "spec": {
                "containers": [
                    {
                        "name": "api",
                        "image": "keystone:1",
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                        "ports": [{"containerPort": 5000, "name": "http"}],
                        "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                    },
                    {"name": "sidecar", "image": "proxy:1"},
                ],
                "volumes": [{"name": "etc", "secret": {"secretName": "etc"}}],
            },
        },
    },
}


def live_with(**changes: Any) -> dict[str, Any]:
    """The Deployment as the API server returns it (defaults, status, others' fields), then `changes`."""
    live = copy.deepcopy(DEPLOYMENT)
    live["metadata"].update(
        namespace="ns",
        uid="u",
        resourceVersion="7",
        labels={"app": "api", "pod-template-hash": "x"},
        annotations={"deployment.kubernetes.io/revision": "3", "meta.helm.sh/release-name": "keystone"},
        managedFields=[{"manager": "helm"}],
    )
    spec = live["spec"]
    spec.update(revisionHistoryLimit=10, progressDeadlineSeconds=600, strategy={"type": "RollingUpdate"})
    pod = spec["template"]["spec"]
    pod.update(restartPolicy="Always", dnsPolicy="ClusterFirst", terminationGracePeriodSeconds=30)
    for c in pod["containers"]:
        c.update(imagePullPolicy="IfNotPresent", terminationMessagePath="/dev/termination-log")
    pod["containers"][0]["ports"][0]["protocol"] = "TCP"
    pod["containers"][0]["resources"]["limits"] = {"cpu": "1000m", "memory": "1073741824"}
    pod["volumes"][0]["secret"]["defaultMode"] = 420
    live["status"] = {"replicas": 2, "readyReplicas": 2}
    for path, value in changes.items():
        node = live
        *parents, last = path.split("__")
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if value is None:
            del node[int(last) if isinstance(node, list) else last]
        else:
            node[int(last) if isinstance(node, list) else last] = value
    return live


def test_defaults_status_and_other_fields_are_not_drift() -> None:
    assert object_drift(DEPLOYMENT, live_with()) == []


@pytest.mark.parametrize(
    ("changes", "paths"),
    [
        ({"spec__replicas": 5}, ["spec.replicas"]),
        (
            {"spec__template__spec__containers__0__image": "keystone:2"},
            ["spec.template.spec.containers[api].image"],
        ),
        (
            {"spec__template__metadata__annotations__checksum/config": "zzz"},
            ["spec.template.metadata.annotations.checksum/config"],
        ),
        ({"spec__template__spec__containers__0__env__1": None}, ["spec.template.spec.containers[api].env[B]"]),
        (
            {"spec__template__spec__containers__0__env__0": {"name": "A", "value": "9"}},
            ["spec.template.spec.containers[api].env[A].value"],
        ),
        ({"spec__template__spec__containers__1": None}, ["spec.template.spec.containers[sidecar]"]),
        ({"metadata__labels": {"pod-template-hash": "x"}}, ["metadata.labels.app"]),
        (
            {"spec__template__spec__containers__0__resources__limits__cpu": "2"},
            ["spec.template.spec.containers[api].resources.limits.cpu"],
        ),
    ],
)
def test_changes_to_what_the_manifest_sets_are_drift(changes: dict[str, Any], paths: list[str]) -> None:
    assert object_drift(DEPLOYMENT, live_with(**changes)) == paths


def test_named_items_are_matched_by_name_not_position() -> None:
    live = live_with()
    containers = live["spec"]["template"]["spec"]["containers"]
    containers.reverse()
    containers.append({"name": "injected", "image": "mesh:1"})  # another controller's sidecar
    assert object_drift(DEPLOYMENT, live) == []


def test_missing_object() -> None:
    assert object_drift(DEPLOYMENT, None) == [MISSING_PATH]


@pytest.mark.parametrize(
    ("want", "have", "paths"),
    [
        ({"a": {}}, {}, []),  # an empty map the API server omits
        ({"a": [], "b": "", "c": False, "d": 0}, {}, []),
        ({"a": None}, {"a": 1}, []),  # null in the manifest sets nothing
        ({"port": 8080}, {"port": "8080"}, []),
        ({"on": True}, {"on": "true"}, ["on"]),
        ({"args": ["a", "b"]}, {"args": ["b", "a"]}, ["args[0]", "args[1]"]),
        ({"args": ["a"]}, {"args": ["a", "b"]}, ["args"]),
        ({"m": {"k": "v"}}, {"m": "x"}, ["m"]),
    ],
)
def test_compare_table(want: dict[str, Any], have: dict[str, Any], paths: list[str]) -> None:
    assert list(compare(want, have)) == paths


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_secret_string_data_is_compared_with_live_data() -> None:
    manifest = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"user": "admin"}}
    live = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"user": b64("admin")}}
    assert object_drift(manifest, live) == []
    live["data"]["user"] = b64("root")
    assert object_drift(manifest, live) == ["data.user"]


MANIFEST = """\
---
apiVersion: v1
kind: Secret
metadata: {name: keystone-fernet-keys}
data: {"0": ""}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: nova-api}
spec: {replicas: 2, template: {spec: {containers: [{name: api, image: "nova:1"}]}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: conf}
data: {a: "1"}
"""


def live_objects(replicas: int = 2, image: str = "nova:1", keys: str = "") -> dict[ObjectKey, dict[str, Any]]:
    return {
        ObjectKey("Secret", "ns", "keystone-fernet-keys"): {"kind": "Secret", "data": {"0": keys}},
        ObjectKey("Deployment", "ns", "nova-api"): {
            "kind": "Deployment",
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "api", "image": image}]}}},
        },
    }


@pytest.mark.parametrize(
    ("policy", "live", "expected"),
    [
        (DriftPolicy(), live_objects(), {("ConfigMap", "conf"): ["<missing>"]}),
        (
            DriftPolicy(),
            live_objects(replicas=5, keys=b64("k")),
            {
                ("ConfigMap", "conf"): ["<missing>"],
                ("Deployment", "nova-api"): ["spec.replicas"],
                ("Secret", "keystone-fernet-keys"): ["data.0"],
            },
        ),
        (
            DriftPolicy(
                ignore=(
                    IgnoreRule("Secret", "keystone-fernet-keys"),
                    IgnoreRule("Deployment", "nova-api", paths=("spec.replicas",)),
                    IgnoreRule("ConfigMap", "conf", namespace="other"),
                )
            ),
            live_objects(replicas=5, image="nova:2", keys=b64("k")),
            {
                ("ConfigMap", "conf"): ["<missing>"],
                ("Deployment", "nova-api"): ["spec.template.spec.containers[api].image"],
            },
        ),
        (DriftPolicy(ignore=(IgnoreRule("*", "*"),)), live_objects(replicas=5), {}),
        (DriftPolicy(mode="off"), {}, {}),
    ],
)
def test_release_drift_with_ignore_rules(
    policy: DriftPolicy, live: dict[ObjectKey, dict[str, Any]], expected: dict[tuple[str, str], list[str]]
) -> None:
    items = release_drift(MANIFEST, "ns", live, policy)
    assert {(i.kind, i.name): list(i.paths) for i in items} == expected
    for i in items:
        assert i.missing == (list(i.paths) == [MISSING_PATH])
        assert set(i.to_dict()) >= {"kind", "namespace", "name", "paths"} and i.namespace == "ns"
