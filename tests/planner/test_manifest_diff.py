"""The object-by-object manifest diff (pure), table-driven."""

from __future__ import annotations

import base64

import pytest

from deploy_manager.planner.manifest_diff import Change, ObjectKey, diff_manifests, parse_manifest


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


CM = """\
---
# Source: chart/templates/cm.yaml
apiVersion: v1
kind: ConfigMap
metadata: {{name: conf}}
data: {{debug: "{debug}", db: "mysql://keystone:{password}@db/keystone"}}
"""
SECRET = """\
---
apiVersion: v1
kind: Secret
metadata: {{name: etc, namespace: other}}
data: {{keystone.conf: {conf}, policy.yaml: {policy}}}
"""
DEPLOY = """\
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: api}}
spec:
  replicas: 1
  template:
    metadata: {{annotations: {{checksum/config: {checksum}}}}}
    spec: {{containers: [{{name: api, image: "keystone:1"}}]}}
"""
ROLE = """\
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader}
rules: []
"""


def render(
    debug: str = "false",
    password: str = "s3cret-pw",
    conf: str = "a",
    policy: str = "p",
    checksum: str = "c1",
    role: bool = False,
) -> str:
    text = CM.format(debug=debug, password=password)
    text += SECRET.format(conf=b64(conf), policy=b64(policy))
    text += DEPLOY.format(checksum=checksum)
    return text + (ROLE if role else "")


def test_parse_keys_objects_with_the_release_namespace_and_cluster_scope() -> None:
    objs = parse_manifest(render(role=True) + "---\n# only a comment\n", "openstack")
    assert set(objs) == {
        ObjectKey("ConfigMap", "openstack", "conf"),
        ObjectKey("Secret", "other", "etc"),
        ObjectKey("Deployment", "openstack", "api"),
        ObjectKey("ClusterRole", "", "reader"),
    }


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        (render(), []),
        (render(debug="true", checksum="c2"), [("ConfigMap", "conf", "changed"), ("Deployment", "api", "changed")]),
        (render(conf="b", checksum="c2"), [("Deployment", "api", "changed"), ("Secret", "etc", "changed")]),
        (render(role=True), [("ClusterRole", "reader", "added")]),
        (
            CM.format(debug="false", password="s3cret-pw"),
            [("Deployment", "api", "removed"), ("Secret", "etc", "removed")],
        ),
    ],
)
def test_which_objects_change(new: str, expected: list[tuple[str, str, str]]) -> None:
    diffs = diff_manifests(render(), new, namespace="openstack")
    assert [(d.kind, d.name, d.change.value) for d in diffs] == expected


def test_only_the_changed_lines_show() -> None:
    (cm, dep) = diff_manifests(render(), render(debug="true", checksum="c2"), namespace="openstack")
    changed = [ln for ln in dep.diff.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    assert changed == ["-        checksum/config: c1", "+        checksum/config: c2"]
    assert dep.diff.startswith("--- deployed: Deployment openstack/api\n+++ new: Deployment openstack/api\n")
    assert "-  debug: 'false'" in cm.diff and "+  debug: 'true'" in cm.diff


def test_secret_data_is_masked_and_a_changed_key_says_changed() -> None:
    (secret,) = [
        d
        for d in diff_manifests(render(conf="old-conf"), render(conf="new-conf"), namespace="ns")
        if d.kind == "Secret"
    ]
    assert secret.change is Change.changed
    assert "-  keystone.conf: '***'" in secret.diff and "+  keystone.conf: <changed>" in secret.diff
    assert b64("old-conf") not in secret.diff
    assert b64("new-conf") not in secret.diff and b64("p") not in secret.diff


def test_added_secret_shows_no_data() -> None:
    (secret,) = diff_manifests("", SECRET.format(conf=b64("x" * 10), policy=b64("y" * 10)), namespace="ns")
    assert secret.change is Change.added and b64("x" * 10) not in secret.diff and "'***'" in secret.diff


def test_configured_secret_values_are_masked_everywhere() -> None:
    diffs = diff_manifests(
        render(password="old-pass-1"),
        render(password="new-pass-2"),
        namespace="ns",
        secrets={"old-pass-1", "new-pass-2"},
    )
    (cm,) = diffs
    assert "old-pass-1" not in cm.diff and "new-pass-2" not in cm.diff and "***" in cm.diff


def test_password_assignments_are_masked_even_when_not_configured() -> None:
    old = "kind: ConfigMap\nmetadata: {name: c}\ndata: {conf: 'password = hunter22'}\n"
    new = "kind: ConfigMap\nmetadata: {name: c}\ndata: {conf: 'password = hunter33'}\n"
    (cm,) = diff_manifests(old, new, namespace="ns")
    assert "hunter" not in cm.diff


def test_to_dict_fields() -> None:
    (d,) = diff_manifests("", ROLE, namespace="ns")
    assert set(d.to_dict()) == {"kind", "namespace", "name", "change", "diff"}
    assert d.to_dict()["namespace"] == "" and d.to_dict()["change"] == "added"


def test_a_config_file_diff_shows_the_changed_line() -> None:
    old = "kind: ConfigMap\nmetadata: {name: c}\ndata:\n  app.conf: |\n    [DEFAULT]\n    debug = false\n    w = 2\n"
    (cm,) = diff_manifests(old, old.replace("debug = false", "debug = true"), namespace="ns")
    lines = [ln for ln in cm.diff.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    assert lines == ["-    debug = false", "+    debug = true"]
