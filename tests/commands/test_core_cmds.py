"""The CLI on bad input: one precise line on stderr, exit 2, no traceback, nothing written.

No cluster is needed: the kubeconfig points at a closed loopback port, and every input error must be
reported before the cluster is contacted. The unreachable cluster is itself one of the cases.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from deploy_manager.cli import app
from tests.corelib import commit, simple_repo, write, write_cluster

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:1"}}]
users: [{name: u, user: {}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return simple_repo(tmp_path / "repo")


def run(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    kc = write(tmp_path / "kubeconfig", KUBECONFIG)
    result = CliRunner().invoke(
        app, [*args, "--kubeconfig", str(kc), "--state-dir", str(tmp_path / "state")], catch_exceptions=False
    )
    return result.exit_code, result.stdout, result.stderr


def break_repo(repo: Path, case: str) -> None:
    spec = yaml.safe_load((repo / "values/dev/cluster.yaml").read_text())
    if case == "yaml":
        write(repo / "values/dev/keystone.yaml", "conf:\n  keystone: {debug: true\n")
    elif case == "schema":
        spec["components"]["glance"]["timeout"] = -5
        write_cluster(repo, "dev", spec)
    elif case == "chart":
        spec["components"]["glance"]["chart"] = "charts/openstack/missing"
        write_cluster(repo, "dev", spec)
    elif case == "cycle":
        spec["components"]["rabbitmq"]["needs"] = ["nova"]
        write_cluster(repo, "dev", spec)
    commit(repo, f"break: {case}")


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("yaml", r"error: values/dev/keystone\.yaml:\d+: invalid YAML: "),
        ("schema", r"error: values/dev/cluster\.yaml:\d+: components\.glance\.timeout: Input should be greater than 0"),
        ("chart", r"error: values/dev/cluster\.yaml:\d+: components\.glance\.chart: charts/openstack/missing: "),
        ("cycle", r"error: values/dev/cluster\.yaml: needs cycle: glance -> keystone -> rabbitmq -> nova -> glance"),
    ],
)
@pytest.mark.parametrize("command", ["plan", "apply"])
def test_bad_input_is_one_precise_line(repo: Path, tmp_path: Path, case: str, message: str, command: str) -> None:
    break_repo(repo, case)
    code, out, err = run(tmp_path, command, "--repo", str(repo), "--cluster", "dev")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert __import__("re").match(message, err), err
    assert "Traceback" not in err


def test_unknown_revision(repo: Path, tmp_path: Path) -> None:
    code, _, err = run(tmp_path, "plan", "--repo", str(repo), "--cluster", "dev", "--rev", "nope")
    assert code == 2 and err.strip() == f"error: unknown revision 'nope' in {repo}"


def test_unknown_cluster(repo: Path, tmp_path: Path) -> None:
    code, _, err = run(tmp_path, "plan", "--repo", str(repo), "--cluster", "qa")
    assert code == 2 and err.startswith("error: no such cluster 'qa': values/qa/cluster.yaml not found")


def test_unreachable_cluster(repo: Path, tmp_path: Path) -> None:
    code, _, err = run(tmp_path, "plan", "--repo", str(repo), "--cluster", "dev", "-o", "json")
    assert code == 2
    assert err.startswith("error: listing Helm release Secrets: cannot reach the Kubernetes API at http://127.0.0.1:1")
    assert len(err.strip().splitlines()) == 1


def test_failed_preflight_apply_is_recorded(repo: Path, tmp_path: Path) -> None:
    break_repo(repo, "cycle")
    run(tmp_path, "apply", "--repo", str(repo), "--cluster", "dev")
    code, out, _ = run(tmp_path, "history", "--cluster", "dev", "-o", "json")
    runs = yaml.safe_load(out)
    assert code == 0 and len(runs) == 1 and runs[0]["status"] == "failed" and "needs cycle" in runs[0]["error"]
    assert runs[0]["steps"] == []
