"""Rendering a chart's `<release>-etc` Secret for bootstrap Jobs, with the real helm and the real keystone chart."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from deploy_manager.bootstrap.etc import pick_etc_data, render_etc
from deploy_manager.desired.loader import load_cluster
from deploy_manager.desired.values import secret_values
from deploy_manager.helm.runner import HelmRunner
from deploy_manager.models.errors import ChartError
from deploy_manager.source.git import GitSource
from tests.bootstrap.stack import CLUSTER, build_repo

MULTI = """\
apiVersion: v1
kind: Secret
metadata:
  name: other-etc
data:
  a.conf: b3RoZXI=
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: ks-etc
data:
  x: y
---
apiVersion: v1
kind: Secret
metadata:
  name: ks-etc
data:
  ks.conf: W0RFRkFVTFRd
stringData:
  extra.ini: "[x]"
"""


def test_pick_etc_data_takes_the_release_secret_and_encodes_string_data() -> None:
    data = pick_etc_data(MULTI, "ks")
    assert data == {"ks.conf": "W0RFRkFVTFRd", "extra.ini": base64.b64encode(b"[x]").decode()}
    assert pick_etc_data(MULTI, "nope") is None


def test_pick_etc_data_rejects_a_broken_render() -> None:
    with pytest.raises(ChartError, match="release ks: helm template output is not YAML"):
        pick_etc_data("a: [b\n", "ks")


def test_render_etc_of_the_keystone_chart_is_its_config(tmp_path: Path, helm_bin: str) -> None:
    repo = build_repo(tmp_path / "repo")
    source = GitSource(str(repo))
    desired = load_cluster(source, source.resolve("main"), CLUSTER)
    keystone = desired.components["keystone"]
    chart = str(repo / "charts" / "openstack" / "keystone")
    helm = HelmRunner(helm_bin)

    data = render_etc(
        helm,
        chart=chart,
        release="keystone",
        namespace="openstack",
        values=keystone.values,
        secrets=secret_values(keystone.values, keystone.secret_paths),
    )

    assert data is not None
    conf = base64.b64decode(data["keystone.conf"]).decode()
    assert "[token]" in conf and "expiration = 3600" in conf
    # The same inputs render the same bytes: the Secret is only rewritten when the config changes.
    again = render_etc(helm, chart=chart, release="keystone", namespace="openstack", values=keystone.values)
    assert again == data
