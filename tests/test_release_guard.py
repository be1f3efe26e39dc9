"""The OpenStack release guard end to end (issue 17): the CLI, real git, real helm, the kubesim sandbox.

A downgrade or a skipped release is refused before any write: `apply` exits 2 with one line naming the
cluster, the component and the releases, and the sandbox counts no write (not even the Lease); `plan` shows
the component blocked with its reason and its dependents blocked. The next release, and a change named by
`allowReleaseChange`, are applied.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from deploy_manager.cli import app
from tests.corelib import commit, init_repo, simple_cluster, write_cluster, write_values

pytestmark = pytest.mark.helm

CLUSTER = "dev"


class Env:
    def __init__(self, root: Path, state: Path, sandbox: Any, helm_bin: Path) -> None:
        self.root, self.state, self.sandbox, self.helm_bin = root, state, sandbox, helm_bin

    def cli(self, *args: str) -> Any:
        base = [
            "--repo", str(self.root), "--cluster", CLUSTER, "--kubeconfig", str(self.sandbox.kubeconfig),
            "--state-dir", str(self.state), "--helm-bin", str(self.helm_bin),
        ]  # fmt: skip
        return CliRunner().invoke(app, [*args, *base], catch_exceptions=False)

    def tag(self, component: str, release: str) -> str:
        values = {
            "replicas": 1,
            "conf": {component: {"debug": False}},
            "images": {
                "tags": {
                    f"{component}_api": f"quay.io/airshipit/{component}:{release}-ubuntu_noble",
                    f"{component}_db_sync": f"quay.io/airshipit/{component}:{release}-ubuntu_noble",
                }
            },
        }
        write_values(self.root, CLUSTER, component, values)
        return commit(self.root, f"{component} images: {release}")

    def plan(self) -> dict[str, dict[str, Any]]:
        result = self.cli("plan", "-o", "json")
        assert result.exit_code == 0, result.stderr
        return {a["component"]: a for a in json.loads(result.stdout)["actions"]}


@pytest.fixture
def env(tmp_path: Path, sandbox: Any, helm_bin: Path) -> Env:
    root = init_repo(tmp_path / "repo")
    simple_cluster(root, CLUSTER)
    e = Env(root, tmp_path / "state", sandbox, helm_bin)
    for name in ("placement", "nova"):
        e.tag(name, "2026.2")
    first = e.cli("apply")
    assert first.exit_code == 0, first.stderr + first.stdout
    return e


@pytest.mark.parametrize(
    ("placement", "code", "words"),
    [
        ("2027.2", "release_skip", "2026.2 -> 2027.2 (images.tags.placement_api) skips a release"),
        ("2026.1", "downgrade", "2026.2 -> 2026.1 (images.tags.placement_api) is a downgrade"),
    ],
)
def test_refused_change_is_blocked_in_the_plan_and_apply_writes_nothing(
    env: Env, placement: str, code: str, words: str
) -> None:
    env.tag("placement", placement)
    env.tag("nova", "2027.1")  # nova's own change is fine, but it needs placement

    plan = env.plan()
    assert plan["placement"]["action"] == "blocked" and plan["placement"]["reason_details"][0]["code"] == code
    assert words in plan["placement"]["reasons"][0]
    assert plan["nova"]["action"] == "blocked"
    assert [r["code"] for r in plan["nova"]["reason_details"]][:2] == ["need_blocked", "release_upgrade"]
    assert plan["keystone"]["action"] == "none"

    env.sandbox.reset_stats()
    result = env.cli("apply")
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: cluster {CLUSTER}: refused before any write: component placement: ")
    assert f"OpenStack release {words}" in lines[0]
    assert env.sandbox.stats()["writes"] == 0  # no release, no Job, not even the Lease
    history = CliRunner().invoke(app, ["history", "--cluster", CLUSTER, "--state-dir", str(env.state), "-o", "json"])
    assert history.exit_code == 0, history.stderr
    newest = json.loads(history.stdout)[0]
    assert newest["status"] == "failed" and "refused before any write" in newest["error"]


def test_next_release_is_applied_and_the_record_carries_it(env: Env) -> None:
    env.tag("placement", "2027.1")
    plan = env.plan()
    assert plan["placement"]["action"] == "upgrade"
    assert plan["placement"]["reasons"][0] == "OpenStack release 2026.2 -> 2027.1 (N -> N+1)"
    result = env.cli("apply")
    assert result.exit_code == 0, result.stderr
    # The deployed release is read back from the release record's values: going back now is a downgrade.
    env.tag("placement", "2026.2")
    assert env.plan()["placement"]["reason_details"][0]["code"] == "downgrade"


def test_allow_release_change_lets_exactly_that_change_through(env: Env) -> None:
    env.tag("placement", "2027.2")
    spec = yaml.safe_load((env.root / "values" / CLUSTER / "cluster.yaml").read_text())
    spec["components"]["placement"]["allowReleaseChange"] = "2026.2->2027.2"
    write_cluster(env.root, CLUSTER, spec)
    commit(env.root, "allow placement's skip once")
    plan = env.plan()
    assert plan["placement"]["action"] == "upgrade"
    assert plan["placement"]["reason_details"][0]["code"] == "release_change_allowed"
    result = env.cli("apply")
    assert result.exit_code == 0, result.stderr
    # Left in place, it allows nothing else: 2027.2 -> 2026.2 is still a downgrade.
    env.tag("placement", "2026.2")
    refused = env.cli("apply")
    assert refused.exit_code == 2 and "2027.2 -> 2026.2" in refused.stderr
