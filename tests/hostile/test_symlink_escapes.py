"""Finding 1: a symlink whose target leaves the repository tree at that commit fails the component's pre-flight
with an error naming the link, in charts (the chart itself, a linked library chart, a chain of links, a linked
directory), values layers, cluster.yaml and bootstrap scripts, and nothing is written to the cluster. Links
inside the repository keep working, and the exported chart never contains a link (helm would follow it)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from deploy_manager.cli import app as cli
from deploy_manager.models.errors import SymlinkError
from deploy_manager.source.git import GitSource
from tests.corelib import CONFIGMAP_TEMPLATE, write, write_chart
from tests.hostile.conftest import Remote, Service

pytestmark = [pytest.mark.helm, pytest.mark.slow]

# The ConfigMap shows a file of the chart: what an attacker would read through a link.
FILES_TEMPLATE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-files
data:
{{- range $path, $_ := .Files.Glob "files/**" }}
  {{ base $path }}: {{ $.Files.Get $path | quote }}
{{- end }}
"""
TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def _link(root: Path, path: str, target: str) -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, root / path)


def _files_chart(root: Path) -> None:
    write_chart(root, "charts/app", template=FILES_TEMPLATE)
    write(root / "charts/app/files/readme.txt", "hello\n")


def _bootstrap(remote: Remote, script: str) -> None:
    remote.cluster(bootstrap=[{"name": "init", "script": script, "image": "app_init"}])


# case -> (how to break the repo, the link the error must name)
CASES: dict[str, tuple[Callable[[Remote], None], str]] = {
    "chart file, absolute": (
        lambda r: (_files_chart(r.root), _link(r.root, "charts/app/files/passwd", "/etc/passwd")),
        "charts/app/files/passwd",
    ),
    "chart file, relative out of the repo": (
        lambda r: (_files_chart(r.root), _link(r.root, "charts/app/files/up", "../../../" * 8 + "etc/passwd")),
        "charts/app/files/up",
    ),
    "chart file, the service account token": (
        lambda r: (_files_chart(r.root), _link(r.root, "charts/app/files/token", TOKEN)),
        "charts/app/files/token",
    ),
    "chart file, into the state dir next to the chart cache": (
        lambda r: (_files_chart(r.root), _link(r.root, "charts/app/files/db", "../../../deploy-manager.db")),
        "charts/app/files/db",
    ),
    "chart file, a chain of links": (
        lambda r: (
            _files_chart(r.root),
            _link(r.root, "charts/app/files/a", "b"),
            _link(r.root, "charts/app/files/b", "../../../../etc/hostname"),
        ),
        "charts/app/files/b",
    ),
    "chart directory, absolute": (
        lambda r: (_files_chart(r.root), _link(r.root, "charts/app/files/etc", "/etc")),
        "charts/app/files/etc",
    ),
    "linked library chart": (
        lambda r: (
            write_chart(r.root, "charts/common", extra={"type": "library"}, template="{{/* none */}}\n"),
            write(r.root / "charts/common/files/ok.txt", "ok\n"),
            _link(r.root, "charts/common/files/passwd", "/etc/passwd"),
            _link(r.root, "charts/app/charts/common", "../../common"),
        ),
        "charts/common/files/passwd",
    ),
    "values layer": (
        lambda r: ((r.root / "values/dev/app.yaml").unlink(), _link(r.root, "values/dev/app.yaml", "/etc/passwd")),
        "values/dev/app.yaml",
    ),
    "shared values layer, relative": (
        lambda r: _link(r.root, "values/_common/_global.yaml", "../../../../../../etc/hostname"),
        "values/_common/_global.yaml",
    ),
    "cluster.yaml": (
        lambda r: (
            (r.root / "values/dev/cluster.yaml").unlink(),
            _link(r.root, "values/dev/cluster.yaml", "/etc/passwd"),
        ),
        "values/dev/cluster.yaml",
    ),
    "bootstrap script": (
        lambda r: (_bootstrap(r, "bootstrap/app/init.sh.j2"), _link(r.root, "bootstrap/app/init.sh.j2", TOKEN)),
        "bootstrap/app/init.sh.j2",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_escaping_link_fails_plan_and_run_naming_the_link_and_writes_nothing(
    start: Callable[..., Service], remote: Remote, case: str, tmp_path: Path
) -> None:
    svc = start()
    runs_before = len(svc.runs())
    breaks, link = CASES[case]
    breaks(remote)
    sha = remote.commit(f"escape: {case}")
    writes = svc.writes()

    answer = svc.push(sha)
    assert answer.status_code == 202 and answer.json()["status"] == "queued"
    assert svc.queue.wait_idle(60)
    run = svc.runs()[0]
    assert len(svc.runs()) == runs_before + 1
    assert run["status"] == "failed" and link in run["error"] and "symlink" in run["error"]

    with svc.client() as c:  # the push fetched the commit: the plan of the branch head says the same
        plan = c.get("/plan")
    assert plan.status_code == 422, plan.text
    detail = plan.json()["detail"]
    assert link in detail and "symlink" in detail and "\n" not in detail
    assert svc.writes() == writes  # the pre-flight failed: nothing reached the cluster
    assert "root:x:0:0" not in svc.log.getvalue() and "root:x:0:0" not in plan.text
    # Nothing of the link's target was exported where helm could read it.
    for path in (svc.settings.state_dir / "charts").rglob("*"):
        assert not path.is_symlink(), path
    svc.assert_healthy()

    # The CLI says the same in one line and exits 2.
    result = CliRunner().invoke(cli, svc.cli_args("plan", remote.root, tmp_path / "cli-state"))
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert link in line and "symlink" in line and "\n" not in line
    assert svc.writes() == writes


def test_links_inside_the_repository_keep_working(start: Callable[..., Service], remote: Remote) -> None:
    svc = start()
    root = remote.root
    _files_chart(root)
    write(root / "charts/app/templates/conf.yaml", CONFIGMAP_TEMPLATE)
    write(root / "shared/motd.txt", "in-repo file\n")
    _link(root, "charts/app/files/motd", "../../../shared/motd.txt")  # a file elsewhere in the repo
    _link(root, "charts/app/files/alias", "motd")  # a chain, inside the repo
    write_chart(root, "charts/common", extra={"type": "library"}, template="{{/* none */}}\n")
    _link(root, "charts/app/charts/common", "../../common")  # the library chart, as the OpenStack charts do
    write(
        root / "values/shared/app.yaml",
        yaml.safe_dump({"conf": {"app": {"workers": 7}}, "images": {"tags": {"app_init": "busybox:1"}}}),
    )
    (root / "values/dev/app.yaml").unlink()
    _link(root, "values/dev/app.yaml", "../shared/app.yaml")  # a values layer shared by link
    write(root / "bootstrap/shared/init.sh.j2", "echo {{ component }}\n")
    _link(root, "bootstrap/app/init.sh.j2", "../shared/init.sh.j2")
    _bootstrap(remote, "bootstrap/app/init.sh.j2")
    sha = remote.commit("in-repo links")

    assert svc.push(sha).status_code == 202
    assert svc.queue.wait_idle(90)
    run = svc.runs()[0]
    assert run["status"] == "succeeded", svc.client().get(f"/runs/{run['id']}").text
    files = _configmap(svc, remote.namespace, "app-files")
    assert files["motd"] == "in-repo file\n" and files["alias"] == "in-repo file\n"
    assert '"workers":7' in _configmap(svc, remote.namespace, "app-conf")["values.json"]
    for path in (svc.settings.state_dir / "charts").rglob("*"):
        assert not path.is_symlink(), path  # materialised, never linked
    svc.assert_healthy()


def _configmap(svc: Service, namespace: str, name: str) -> dict[str, str]:
    # Through the sandbox's store view: on the kube backend the API server wants TLS and a client
    # certificate, which a bare HTTP client on its URL does not have.
    obj = svc.sandbox.state.store.get(("", "configmaps"), namespace, name)
    assert obj is not None, f"ConfigMap {namespace}/{name} not found"
    return obj["data"]  # type: ignore[no-any-return]


def test_export_never_writes_a_link_and_refuses_one_leaving_the_repo(remote: Remote, tmp_path: Path) -> None:
    root = remote.root
    _files_chart(root)
    _link(root, "charts/app/files/motd", "../values.yaml")
    _link(root, "charts/app/files/dir", "../templates")
    good = remote.commit("good links")
    _link(root, "charts/app/files/passwd", "/etc/passwd")
    bad = remote.commit("bad link")
    src = GitSource(str(root))
    out = src.export_tree(good, "charts/app", tmp_path / "good")
    assert (out / "files/motd").read_text() == "{}\n" and (out / "files/dir/configmap.yaml").is_file()
    assert not any(p.is_symlink() for p in out.rglob("*"))
    with pytest.raises(SymlinkError, match=r"charts/app/files/passwd: symlink to /etc/passwd points outside"):
        src.export_tree(bad, "charts/app", tmp_path / "bad")
    assert not (tmp_path / "bad").exists() and not list(tmp_path.glob(".bad-*"))  # no partial export left
