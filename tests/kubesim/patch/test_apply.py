"""kubesim.patch.apply: server-side apply and managedFields.

Expectations come from the Kubernetes "Server-Side Apply" reference page
(kubernetes.io/docs/reference/using-api/server-side-apply/), section by section as noted.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubesim.patch.apply import fields_from_json, fields_to_json, managed_paths, record_update, server_side_apply
from kubesim.patch.errors import ApplyConflict, PatchError
from kubesim.patch.schema import from_crd

T0 = "2026-01-01T00:00:00Z"


def cm(data: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "test-cm", "namespace": "default"}
    if labels is not None:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def deploy(replicas: int | None = None, containers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": "web"}}}
    if replicas is not None:
        spec["replicas"] = replicas
    if containers is not None:
        spec["template"] = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": spec,
    }


def strip(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["metadata"].pop("managedFields", None)
    return out


# Section "Field management": the test-cm example and its managedFields entry, verbatim.
def test_docs_example_managed_fields() -> None:
    obj = server_side_apply(None, cm({"key": "some value"}, {"test-label": "test"}), "kubectl", False, now=T0)
    assert obj["metadata"]["managedFields"] == [
        {
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "v1",
            "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:key": {}}, "f:metadata": {"f:labels": {"f:test-label": {}}}},
        }
    ]
    assert strip(obj) == cm({"key": "some value"}, {"test-label": "test"})


# Section "Merge strategy": list-type map items are keyed (k:{...}) and carry "." when they own children.
def test_fieldsv1_for_associative_list_items() -> None:
    obj = server_side_apply(None, deploy(containers=[{"name": "nginx", "image": "nginx:1"}]), "m", False, now=T0)
    fields = obj["metadata"]["managedFields"][0]["fieldsV1"]
    item = fields["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"nginx"}']
    assert item == {".": {}, "f:image": {}, "f:name": {}}
    assert fields_from_json(fields_to_json(fields_from_json(fields))) == fields_from_json(fields)


# Section "Conflicts": a different value for a field another manager owns is a conflict;
# "Forcing" moves ownership; "Sharing": the same value is no conflict and both own it.
CONFLICT_CASES = [
    ("different value, not forced", 5, False, "conflict"),
    ("different value, forced", 5, True, "moved"),
    ("same value", 3, False, "shared"),
]


@pytest.mark.parametrize(
    ("replicas", "force", "outcome"), [c[1:] for c in CONFLICT_CASES], ids=[c[0] for c in CONFLICT_CASES]
)
def test_conflicts(replicas: int, force: bool, outcome: str) -> None:
    live = server_side_apply(None, deploy(replicas=3), "helm", False, now=T0)
    if outcome == "conflict":
        with pytest.raises(ApplyConflict) as info:
            server_side_apply(live, deploy(replicas=replicas), "kubectl", force, now=T0)
        assert info.value.conflicts == ['conflict with "helm": .spec.replicas']
        assert info.value.code == 409
        assert str(info.value) == 'Apply failed with 1 conflict: conflict with "helm": .spec.replicas'
        return
    out = server_side_apply(live, deploy(replicas=replicas), "kubectl", force, now=T0)
    assert out["spec"]["replicas"] == replicas
    owners = managed_paths(out)
    if outcome == "moved":
        assert ".spec.replicas" in owners[("kubectl", "Apply")]
        assert ".spec.replicas" not in owners[("helm", "Apply")]
    else:
        assert ".spec.replicas" in owners[("kubectl", "Apply")] and ".spec.replicas" in owners[("helm", "Apply")]


def test_conflict_with_update_manager_names_its_version() -> None:
    # An ordinary update (kubectl scale / edit) takes ownership; a later apply by someone else conflicts.
    live = server_side_apply(None, deploy(replicas=3), "helm", False, now=T0)
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 7
    scaled = record_update(live, scaled, "kubectl-scale", now=T0)
    owners = managed_paths(scaled)
    assert owners[("kubectl-scale", "Update")] == [".spec.replicas"]
    assert ".spec.replicas" not in owners[("helm", "Apply")]
    with pytest.raises(ApplyConflict) as info:
        server_side_apply(scaled, deploy(replicas=3), "helm", False, now=T0)
    assert info.value.conflicts == ['conflict with "kubectl-scale" using apps/v1: .spec.replicas']
    assert info.value.fields == [("kubectl-scale", ".spec.replicas")]
    # the Status body a real apiserver returns for it
    assert info.value.status("web", "deployments", "apps") == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'Apply failed with 1 conflict: conflict with "kubectl-scale" using apps/v1: .spec.replicas',
        "reason": "Conflict",
        "details": {
            "causes": [
                {
                    "reason": "FieldManagerConflict",
                    "message": 'conflict with "kubectl-scale" using apps/v1',
                    "field": ".spec.replicas",
                }
            ],
            "name": "web",
            "kind": "deployments",
            "group": "apps",
        },
        "code": 409,
    }


# Section "Field management": a field removed from the manifest is deleted if no other manager owns it.
def test_removed_field_is_deleted_when_unowned() -> None:
    live = server_side_apply(None, cm({"a": "1", "b": "2"}, {"x": "1"}), "mgr", False, now=T0)
    out = server_side_apply(live, cm({"a": "1"}), "mgr", False, now=T0)
    assert out["data"] == {"a": "1"}
    assert "labels" not in out["metadata"]
    assert managed_paths(out) == {("mgr", "Apply"): [".data.a"]}


def test_removed_field_survives_when_co_owned() -> None:
    live = server_side_apply(None, cm({"a": "1", "b": "2"}), "one", False, now=T0)
    live = server_side_apply(live, cm({"b": "2"}), "two", False, now=T0)  # shares .data.b
    out = server_side_apply(live, cm({"a": "1"}), "one", False, now=T0)
    assert out["data"] == {"a": "1", "b": "2"}
    assert managed_paths(out)[("two", "Apply")] == [".data.b"]


# Section "Transferring ownership" (the HPA example): replicas owned by a controller's update stays
# when the applier stops mentioning it.
def test_transfer_ownership_to_controller() -> None:
    live = server_side_apply(None, deploy(replicas=3), "kubectl", False, now=T0)
    hpa = copy.deepcopy(live)
    hpa["spec"]["replicas"] = 4
    hpa = record_update(live, hpa, "kube-controller-manager", now=T0, subresource="scale")
    out = server_side_apply(hpa, deploy(), "kubectl", False, now=T0)  # replicas no longer in the manifest
    assert out["spec"]["replicas"] == 4
    assert managed_paths(out)[("kube-controller-manager", "Update")] == [".spec.replicas"]


# Section "Merge strategy": listType=map merges by key, other managers' items stay; atomic lists are replaced.
def test_associative_list_merge_between_managers() -> None:
    live = server_side_apply(None, deploy(containers=[{"name": "app", "image": "a:1"}]), "helm", False, now=T0)
    sidecar = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "proxy", "image": "p:1", "args": ["-v"]}]}}},
    }
    out = server_side_apply(live, sidecar, "injector", False, now=T0)
    names = [c["name"] for c in out["spec"]["template"]["spec"]["containers"]]
    assert names == ["app", "proxy"]
    # the injector changes its atomic args list; helm's container is untouched
    sidecar["spec"]["template"]["spec"]["containers"][0]["args"] = ["-q"]
    out = server_side_apply(out, sidecar, "injector", False, now=T0)
    assert out["spec"]["template"]["spec"]["containers"][1]["args"] == ["-q"]
    # helm drops nothing of the injector's when it re-applies its own manifest
    out = server_side_apply(out, deploy(containers=[{"name": "app", "image": "a:2"}]), "helm", False, now=T0)
    assert [(c["name"], c["image"]) for c in out["spec"]["template"]["spec"]["containers"]] == [
        ("app", "a:2"),
        ("proxy", "p:1"),
    ]


def test_applier_removes_its_own_list_item() -> None:
    two = [{"name": "a", "image": "1"}, {"name": "b", "image": "2", "env": [{"name": "X", "value": "1"}]}]
    live = server_side_apply(None, deploy(containers=two), "helm", False, now=T0)
    out = server_side_apply(live, deploy(containers=[{"name": "a", "image": "1"}]), "helm", False, now=T0)
    assert out["spec"]["template"]["spec"]["containers"] == [{"name": "a", "image": "1"}]


def test_ports_keyed_by_container_port_and_defaulted_protocol() -> None:
    # ports are keyed by (containerPort, protocol); an item without protocol means the default TCP
    c = [{"name": "a", "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}]}]
    live = server_side_apply(None, deploy(containers=c), "helm", False, now=T0)
    applied = deploy(containers=[{"name": "a", "ports": [{"containerPort": 80, "name": "http", "hostPort": 8080}]}])
    out = server_side_apply(live, applied, "other", False, now=T0)
    assert out["spec"]["template"]["spec"]["containers"][0]["ports"] == [
        {"containerPort": 80, "protocol": "TCP", "name": "http", "hostPort": 8080}
    ]
    port = '.spec.template.spec.containers[name="a"].ports[containerPort=80,protocol="TCP"]'
    assert port + ".hostPort" in managed_paths(out)[("other", "Apply")]


def test_set_list_finalizers() -> None:
    obj = cm({"a": "1"})
    obj["metadata"]["finalizers"] = ["x/y"]
    live = server_side_apply(None, obj, "one", False, now=T0)
    other = cm({})
    del other["data"]  # an empty map would be owned as a whole
    other["metadata"]["finalizers"] = ["z/w"]
    out = server_side_apply(live, other, "two", False, now=T0)
    assert out["metadata"]["finalizers"] == ["x/y", "z/w"]
    assert managed_paths(out)[("two", "Apply")] == ['.metadata.finalizers[="z/w"]']


def test_apply_is_idempotent_and_does_not_touch_server_fields() -> None:
    live = server_side_apply(None, deploy(replicas=2), "helm", False, now=T0)
    live["metadata"].update(uid="u1", resourceVersion="7", creationTimestamp=T0, generation=1)
    live["status"] = {"replicas": 2}
    again = server_side_apply(live, deploy(replicas=2), "helm", False, now=T0)
    assert again == live


def test_before_first_apply_owns_untracked_fields() -> None:
    live = deploy(replicas=3)  # stored without managedFields
    with pytest.raises(ApplyConflict) as info:
        server_side_apply(live, deploy(replicas=4), "helm", False, now=T0)
    assert '"before-first-apply" using apps/v1' in info.value.conflicts[0]


BAD_CONFIGS = [
    ("no kind", {"apiVersion": "v1", "metadata": {"name": "x"}}),
    ("managedFields set", {**cm({}), "metadata": {"name": "x", "managedFields": [{"manager": "m"}]}}),
    ("container without name", deploy(containers=[{"image": "x"}])),
    ("duplicate keys", deploy(containers=[{"name": "a"}, {"name": "a"}])),
]


@pytest.mark.parametrize("config", [b[1] for b in BAD_CONFIGS], ids=[b[0] for b in BAD_CONFIGS])
def test_invalid_configuration(config: dict[str, Any]) -> None:
    with pytest.raises(PatchError):
        server_side_apply(None, config, "m", False)


# record_update: operation Update bookkeeping (section "Field management", "Clearing managedFields").
def test_record_update_create_and_change() -> None:
    created = record_update(None, cm({"a": "1"}), "helm", now=T0)
    assert managed_paths(created) == {("helm", "Update"): [".data.a"]}
    changed = copy.deepcopy(created)
    changed["data"] = {"a": "1", "b": "2"}
    changed = record_update(created, changed, "kubectl-edit", now=T0)
    assert managed_paths(changed) == {("helm", "Update"): [".data.a"], ("kubectl-edit", "Update"): [".data.b"]}
    removed = copy.deepcopy(changed)
    del removed["data"]["a"]
    removed = record_update(changed, removed, "kubectl-edit", now=T0)
    assert managed_paths(removed) == {("kubectl-edit", "Update"): [".data.b"]}


def test_record_update_managed_fields_from_client() -> None:
    created = server_side_apply(None, cm({"a": "1"}), "helm", False, now=T0)
    # a PUT that omits managedFields (or sends []) keeps the stored ones
    put = strip(created)
    put["data"]["a"] = "2"
    kept = record_update(created, put, "helm-put", now=T0)
    assert set(managed_paths(kept)) == {("helm-put", "Update")}  # .data.a moved to the writer
    put["metadata"]["managedFields"] = []
    assert managed_paths(record_update(created, put, "x", now=T0)) == {("x", "Update"): [".data.a"]}
    # [{}] clears them
    put["metadata"]["managedFields"] = [{}]
    assert "managedFields" not in record_update(created, put, "x", now=T0)["metadata"]


# Section "Merge strategy" (custom resources): lists follow the CRD schema's x-kubernetes-list-type;
# a list without one is atomic.
WIDGET_CRD = {
    "spec": {
        "versions": [
            {
                "name": "v1",
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "tags": {"type": "array", "items": {"type": "string"}},
                                    "parts": {
                                        "type": "array",
                                        "x-kubernetes-list-type": "map",
                                        "x-kubernetes-list-map-keys": ["name"],
                                        "items": {
                                            "type": "object",
                                            "properties": {"name": {"type": "string"}, "size": {"type": "integer"}},
                                        },
                                    },
                                },
                            }
                        },
                    }
                },
            }
        ]
    }
}


def widget(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec}


def test_custom_resource_lists_follow_crd_schema() -> None:
    sch = from_crd(WIDGET_CRD, "v1")
    live = server_side_apply(
        None, widget({"tags": ["a"], "parts": [{"name": "x", "size": 1}]}), "one", False, schema=sch, now=T0
    )
    out = server_side_apply(
        live, widget({"tags": ["b"], "parts": [{"name": "y", "size": 2}]}), "two", True, schema=sch, now=T0
    )
    assert out["spec"]["tags"] == ["b"]  # atomic: replaced (forced, it was "one"'s)
    assert out["spec"]["parts"] == [{"name": "x", "size": 1}, {"name": "y", "size": 2}]  # map: merged
    owners = managed_paths(out)
    assert owners[("two", "Apply")] == ['.spec.parts[name="y"]', '.spec.parts[name="y"].name',
                                        '.spec.parts[name="y"].size', ".spec.tags"]  # fmt: skip
    assert ".spec.tags" not in owners[("one", "Apply")]
