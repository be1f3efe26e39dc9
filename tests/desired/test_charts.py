"""Chart digests from git tree ids (with file:// and symlinked library charts) and export for real helm."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from deploy_manager.desired.charts import chart_info, export_chart
from deploy_manager.models.errors import ChartError, SymlinkError
from deploy_manager.source.git import GitSource
from tests.corelib import commit, init_repo, write, write_chart

HELM = str(Path(__file__).resolve().parents[2] / ".tools" / "bin" / "helm")

LIB_HELPER = '{{- define "common.name" -}}common-{{ .Release.Name }}{{- end -}}\n'
USES_LIB = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "common.name" . }}
data:
  x: "1"
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = init_repo(tmp_path / "repo")
    write(root / "charts/openstack/common/Chart.yaml", "apiVersion: v2\nname: common\nversion: 0.1.0\ntype: library\n")
    write(root / "charts/openstack/common/templates/_names.tpl", LIB_HELPER)
    write_chart(
        root,
        "charts/openstack/keystone",
        template=USES_LIB,
        extra={"dependencies": [{"name": "common", "version": "0.1.0", "repository": "file://../common"}]},
    )
    write_chart(root, "charts/openstack/glance", template=USES_LIB)
    (root / "charts/openstack/glance/charts").mkdir()
    os.symlink("../../common", root / "charts/openstack/glance/charts/common")
    write_chart(root, "charts/openstack/plain")
    commit(root, "charts")
    return root


def infos(root: Path) -> dict[str, str]:
    src = GitSource(str(root))
    head = src.resolve("HEAD")
    return {n: chart_info(src, head, f"charts/openstack/{n}").digest for n in ("keystone", "glance", "plain")}


def test_plain_chart_digest_is_its_tree_id(repo: Path) -> None:
    src = GitSource(str(repo))
    head = src.resolve("HEAD")
    info = chart_info(src, head, "charts/openstack/plain/")
    assert info.digest == src.tree_id(head, "charts/openstack/plain") and info.name == "plain"


def test_library_chart_change_changes_dependents_only(repo: Path) -> None:
    before = infos(repo)
    write(repo / "charts/openstack/common/templates/_more.tpl", '{{- define "common.more" -}}x{{- end -}}\n')
    commit(repo)
    after = infos(repo)
    assert after["keystone"] != before["keystone"]  # file:// dependency
    assert after["glance"] != before["glance"]  # symlinked subchart
    assert after["plain"] == before["plain"]


@pytest.mark.parametrize("chart", ["keystone", "glance"])
def test_exported_chart_renders_with_real_helm(repo: Path, tmp_path: Path, chart: str) -> None:
    src = GitSource(str(repo))
    head = src.resolve("HEAD")
    info = chart_info(src, head, f"charts/openstack/{chart}")
    out = export_chart(src, head, info, tmp_path / "cache")
    assert out == tmp_path / "cache" / info.digest / chart
    assert (out / "charts/common/Chart.yaml").exists()
    rendered = subprocess.run([HELM, "template", "rel", str(out)], check=True, capture_output=True, text=True).stdout
    assert "name: common-rel" in rendered
    # Cached by digest: a second export reuses the directory.
    assert export_chart(src, head, info, tmp_path / "cache") == out


def test_missing_chart_and_chart_yaml(repo: Path) -> None:
    src = GitSource(str(repo))
    head = src.resolve("HEAD")
    with pytest.raises(ChartError, match="charts/openstack/nope: no chart directory"):
        chart_info(src, head, "charts/openstack/nope")
    with pytest.raises(ChartError, match=r"charts/openstack/plain/templates/Chart\.yaml: missing"):
        chart_info(src, head, "charts/openstack/plain/templates")


def test_a_chart_directory_reached_through_a_link_in_the_repo_works(repo: Path, tmp_path: Path) -> None:
    os.symlink("openstack", repo / "charts/os")  # a link in the chart's path
    os.symlink("plain", repo / "charts/openstack/alias")  # the chart directory itself is a link
    os.symlink("/etc", repo / "charts/outside")
    commit(repo, "links to charts")
    src = GitSource(str(repo))
    head = src.resolve("HEAD")
    plain = chart_info(src, head, "charts/openstack/plain")
    for path in ("charts/os/plain", "charts/openstack/alias"):
        info = chart_info(src, head, path)
        assert info.path == "charts/openstack/plain" and info.digest == plain.digest
        out = export_chart(src, head, info, tmp_path / "cache")
        assert (out / "Chart.yaml").is_file() and not any(p.is_symlink() for p in out.rglob("*"))
    with pytest.raises(SymlinkError, match="charts/outside: symlink to /etc points outside the repository"):
        chart_info(src, head, "charts/outside/ssl")
