"""The resource table and discovery documents, including CRDs coming and going."""

from __future__ import annotations

from kubesim.discovery import ResourceRegistry

CRD = {"metadata": {"name": "widgets.example.com"},
       "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"kind": "Widget", "plural": "widgets", "shortNames": ["wd"]},
                "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}}},
                             {"name": "v2", "served": True, "storage": False},
                             {"name": "v0", "served": False, "storage": False}]}}


def test_builtin_groups_and_preferred_versions() -> None:
    registry = ResourceRegistry.with_builtins()
    groups = {g["name"]: g["preferredVersion"]["groupVersion"] for g in registry.api_group_list()["groups"]}
    assert groups["apps"] == "apps/v1" and groups["policy"] == "policy/v1" and "" not in groups
    core = registry.resource_list("", "v1")
    assert core is not None
    by_name = {r["name"]: r for r in core["resources"]}
    assert by_name["namespaces"]["namespaced"] is False and by_name["configmaps"]["shortNames"] == ["cm"]
    assert by_name["pods/log"]["verbs"] == ["get"]
    apps = registry.resource_list("apps", "v1")
    assert apps is not None
    scale = next(r for r in apps["resources"] if r["name"] == "deployments/scale")
    assert (scale["group"], scale["kind"]) == ("autoscaling", "Scale")
    assert registry.resource_list("nothing.io", "v1") is None


def test_aggregated_discovery_matches_the_plain_documents() -> None:
    registry = ResourceRegistry.with_builtins()
    core = registry.aggregated(core=True)
    assert [i["metadata"]["name"] for i in core["items"]] == [""]
    apis = registry.aggregated(core=False)
    apps = next(i for i in apis["items"] if i["metadata"]["name"] == "apps")
    deploy = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
    assert deploy["scope"] == "Namespaced" and deploy["responseKind"]["kind"] == "Deployment"
    assert {s["subresource"] for s in deploy["subresources"]} == {"status", "scale"}


def test_crds_add_and_remove_served_versions() -> None:
    registry = ResourceRegistry.with_builtins()
    seen: list[bool] = []
    registry.crd_listeners.append(lambda crd, served: seen.append(served))
    before = registry.aggregated(core=False)
    registry.set_crd(CRD)
    widget = registry.lookup("example.com", "v1", "widgets")
    assert widget is not None and widget.crd and widget.subresources == ("status",)
    assert registry.lookup("example.com", "v2", "widgets") is not None
    assert registry.lookup("example.com", "v0", "widgets") is None
    assert registry.by_kind("example.com", "Widget") is not None
    assert any(i["metadata"]["name"] == "example.com" for i in registry.aggregated(core=False)["items"])
    assert registry.aggregated(core=False) != before
    registry.remove_crd(CRD)
    assert registry.lookup("example.com", "v1", "widgets") is None
    assert seen == [True, False]
