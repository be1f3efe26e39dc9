"""kubesim.patch.strategic: expectations from the Kubernetes documentation's own examples."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubesim.patch.errors import PatchError
from kubesim.patch.strategic import strategic_merge_patch


def deployment(pod_spec: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "patch-demo"},
        "spec": {"replicas": 2, **spec, "template": {"metadata": {"labels": {"app": "nginx"}}, "spec": pod_spec}},
    }


def pod(spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", **meta}, "spec": spec}


# Source: kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/
# ("Use a strategic merge patch to update a Deployment", "Notes on the strategic merge patch",
#  "Use strategic merge patch to update a Deployment using the retainKeys strategy").
TASK_PAGE = [
    (
        "containers merge by name (patch-file.yaml adds patch-demo-ctr-2)",
        deployment(
            {
                "containers": [{"name": "patch-demo-ctr", "image": "nginx"}],
                "tolerations": [{"effect": "NoSchedule", "key": "dedicated", "value": "test-team"}],
            }
        ),
        {"spec": {"template": {"spec": {"containers": [{"name": "patch-demo-ctr-2", "image": "redis"}]}}}},
        deployment(
            {
                "containers": [
                    {"name": "patch-demo-ctr-2", "image": "redis"},
                    {"name": "patch-demo-ctr", "image": "nginx"},
                ],
                "tolerations": [{"effect": "NoSchedule", "key": "dedicated", "value": "test-team"}],
            }
        ),
    ),
    (
        "tolerations have no patch strategy: the list is replaced (patch-file-tolerations.yaml)",
        deployment(
            {
                "containers": [{"name": "patch-demo-ctr", "image": "nginx"}],
                "tolerations": [{"effect": "NoSchedule", "key": "dedicated", "value": "test-team"}],
            }
        ),
        {
            "spec": {
                "template": {"spec": {"tolerations": [{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}]}}
            }
        },
        deployment(
            {
                "containers": [{"name": "patch-demo-ctr", "image": "nginx"}],
                "tolerations": [{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}],
            }
        ),
    ),
    (
        "retainKeys clears the rollingUpdate member of the strategy union (patch-file-retainkeys.yaml)",
        deployment(
            {"containers": [{"name": "retainkeys-demo-ctr", "image": "nginx"}]},
            strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "30%", "maxUnavailable": "30%"}},
        ),
        {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
        deployment({"containers": [{"name": "retainkeys-demo-ctr", "image": "nginx"}]}, strategy={"type": "Recreate"}),
    ),
    (
        "without retainKeys the same change keeps rollingUpdate (what the page warns about)",
        deployment(
            {"containers": [{"name": "c", "image": "nginx"}]},
            strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "30%"}},
        ),
        {"spec": {"strategy": {"type": "Recreate"}}},
        deployment(
            {"containers": [{"name": "c", "image": "nginx"}]},
            strategy={"type": "Recreate", "rollingUpdate": {"maxSurge": "30%"}},
        ),
    ),
]

# Source: kubernetes/community contributors/devel/sig-api-machinery/strategic-merge-patch.md
# (sections "replace Directive", "delete Directive", "deleteFromPrimitiveList Directive",
#  "setElementOrder Directive", "retainKeys Directive"; merge keys from k8s.io/api types).
DEVEL_DOC = [
    (
        "$patch: replace on a list of maps replaces the whole list",
        pod({"containers": [{"name": "nginx", "image": "nginx-1.0"}, {"name": "log", "image": "l"}]}),
        {"spec": {"containers": [{"name": "nginx", "image": "nginx-1.0"}, {"$patch": "replace"}]}},
        pod({"containers": [{"name": "nginx", "image": "nginx-1.0"}]}),
    ),
    (
        "$patch: replace on a map replaces the map instead of merging",
        pod({"containers": [{"name": "c", "image": "i"}]}, labels={"a": "1", "b": "2"}),
        {"metadata": {"labels": {"c": "3", "$patch": "replace"}}},
        pod({"containers": [{"name": "c", "image": "i"}]}, labels={"c": "3"}),
    ),
    (
        "$patch: delete on a list item removes the item with that merge key",
        pod({"containers": [{"name": "nginx", "image": "n"}, {"name": "log-tailer", "image": "l"}]}),
        {"spec": {"containers": [{"name": "log-tailer", "$patch": "delete"}]}},
        pod({"containers": [{"name": "nginx", "image": "n"}]}),
    ),
    (
        "$patch: delete on a map removes its content",
        pod({"containers": [{"name": "c", "image": "i"}]}, labels={"a": "1"}),
        {"metadata": {"labels": {"$patch": "delete"}}},
        pod({"containers": [{"name": "c", "image": "i"}]}, labels={}),
    ),
    (
        "$deleteFromPrimitiveList removes values from a merging primitive list (finalizers)",
        pod({"containers": []}, finalizers=["a", "b", "c", "b"]),
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}},
        pod({"containers": []}, finalizers=["a", "c"]),
    ),
    (
        "finalizers merge as a deduplicated set",
        pod({"containers": []}, finalizers=["a", "b"]),
        {"metadata": {"finalizers": ["b", "c"]}},
        pod({"containers": []}, finalizers=["a", "b", "c"]),
    ),
    (
        "$setElementOrder on a primitive list (finalizers b, c, a)",
        pod({"containers": []}, finalizers=["a", "b", "c"]),
        {"metadata": {"$setElementOrder/finalizers": ["b", "c", "a"]}},
        pod({"containers": []}, finalizers=["b", "c", "a"]),
    ),
    (
        "$setElementOrder on a list of maps (containers b, c, a)",
        pod({"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}, {"name": "c", "image": "3"}]}),
        {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "c"}, {"name": "a"}]}},
        pod({"containers": [{"name": "b", "image": "2"}, {"name": "c", "image": "3"}, {"name": "a", "image": "1"}]}),
    ),
    (
        "$setElementOrder together with a change to one item",
        pod({"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]}),
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                "containers": [{"name": "a", "image": "9"}],
            }
        },
        pod({"containers": [{"name": "b", "image": "2"}, {"name": "a", "image": "9"}]}),
    ),
    (
        "retainKeys on a volume (volumes: merge,retainKeys) switches its source",
        pod({"containers": [], "volumes": [{"name": "v", "emptyDir": {}}, {"name": "w", "emptyDir": {}}]}),
        {"spec": {"volumes": [{"name": "v", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/x"}}]}},
        pod({"containers": [], "volumes": [{"name": "v", "hostPath": {"path": "/x"}}, {"name": "w", "emptyDir": {}}]}),
    ),
]

# Merge keys taken from the API types (patchMergeKey tags, published as x-kubernetes-patch-merge-key).
MERGE_KEYS = [
    (
        "env merges by name; null deletes a field inside an item",
        pod(
            {
                "containers": [
                    {"name": "c", "image": "i", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
                ]
            }
        ),
        {"spec": {"containers": [{"name": "c", "env": [{"name": "B", "value": "3"}], "image": None}]}},
        pod({"containers": [{"name": "c", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]}]}),
    ),
    (
        "container ports merge by containerPort",
        pod({"containers": [{"name": "c", "ports": [{"containerPort": 80, "name": "http"}]}]}),
        {
            "spec": {
                "containers": [{"name": "c", "ports": [{"containerPort": 80, "name": "web"}, {"containerPort": 443}]}]
            }
        },
        pod({"containers": [{"name": "c", "ports": [{"containerPort": 80, "name": "web"}, {"containerPort": 443}]}]}),
    ),
    (
        "volumeMounts merge by mountPath",
        pod({"containers": [{"name": "c", "volumeMounts": [{"name": "a", "mountPath": "/a"}]}]}),
        {"spec": {"containers": [{"name": "c", "volumeMounts": [{"name": "b", "mountPath": "/a", "readOnly": True}]}]}},
        pod({"containers": [{"name": "c", "volumeMounts": [{"name": "b", "mountPath": "/a", "readOnly": True}]}]}),
    ),
    (
        "Service ports merge by port",
        {"apiVersion": "v1", "kind": "Service", "spec": {"ports": [{"port": 80, "targetPort": 8080}]}},
        {"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 81}]}},
        {"apiVersion": "v1", "kind": "Service", "spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 81}]}},
    ),
    (
        "args (no strategy) are replaced",
        pod({"containers": [{"name": "c", "args": ["a", "b"]}]}),
        {"spec": {"containers": [{"name": "c", "args": ["c"]}]}},
        pod({"containers": [{"name": "c", "args": ["c"]}]}),
    ),
    (
        "an unknown kind falls back to the field-name table (containers by name)",
        {"apiVersion": "example.com/v1", "kind": "Thing", "spec": {"containers": [{"name": "a", "image": "1"}]}},
        {"spec": {"containers": [{"name": "b", "image": "2"}]}},
        {
            "apiVersion": "example.com/v1",
            "kind": "Thing",
            "spec": {"containers": [{"name": "b", "image": "2"}, {"name": "a", "image": "1"}]},
        },
    ),
    (
        "a new nested map is taken from the patch without its nulls",
        pod({"containers": []}),
        {"spec": {"securityContext": {"runAsUser": 1, "fsGroup": None}}},
        pod({"containers": [], "securityContext": {"runAsUser": 1}}),
    ),
]

CASES = TASK_PAGE + DEVEL_DOC + MERGE_KEYS


@pytest.mark.parametrize(("original", "patch", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_strategic_merge_patch(original: dict, patch: dict, expected: dict) -> None:
    before_original, before_patch = copy.deepcopy(original), copy.deepcopy(patch)
    assert strategic_merge_patch(original, patch) == expected
    assert original == before_original and patch == before_patch  # inputs untouched


BAD = [
    ("unknown $patch", {"metadata": {"labels": {"$patch": "explode"}}}, 400),
    ("delete item without merge key", {"spec": {"containers": [{"$patch": "delete"}]}}, 400),
    ("list item without merge key", {"spec": {"containers": [{"image": "x"}]}}, 400),
    ("retainKeys not a list", {"spec": {"$retainKeys": "x"}}, 400),
    ("field outside retainKeys", {"spec": {"$retainKeys": ["a"], "b": 1}}, 400),
    ("list of lists", {"spec": {"containers": [["a"]]}}, 422),
    ("setElementOrder entry without key", {"spec": {"$setElementOrder/containers": ["a"]}}, 400),
    ("deleteFromPrimitiveList not a list", {"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}, 400),
]


@pytest.mark.parametrize(("patch", "code"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_patches(patch: dict, code: int) -> None:
    original = pod({"containers": [{"name": "a", "image": "1"}]}, labels={"x": "y"})
    with pytest.raises(PatchError) as info:
        strategic_merge_patch(original, patch)
    assert info.value.code == code


def test_patch_must_be_object() -> None:
    with pytest.raises(PatchError):
        strategic_merge_patch(pod({}), ["not", "a", "map"])  # type: ignore[arg-type]
