"""`deploy-manager suspend|resume|status|plan|apply` on the sandbox with the real helm (issue 13).

Each component lives in its own namespace, so "nothing written to it" is checked as: no object in its
namespace changed (every ConfigMap, Secret, Job and Deployment keeps its resourceVersion).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from deploy_manager.cli import app
from kubesim.testing import KubeCLI, RunningSandbox
from tests.corelib import commit, init_repo, write, write_chart, write_cluster, write_values

pytestmark = [pytest.mark.helm]

LEASE_NS = "default"


class Cli:
    def __init__(self, sandbox: RunningSandbox, helm_bin: Path, tmp_path: Path, repo: Path) -> None:
        self.kubeconfig = str(sandbox.kubeconfig)
        self.helm_bin = str(helm_bin)
        self.state = str(tmp_path / "state")
        self.repo = str(repo)

    def __call__(self, *args: str, repo: bool = True) -> tuple[int, str, str]:
        extra = ["--repo", self.repo, "--state-dir", self.state, "--helm-bin", self.helm_bin] if repo else []
        result = CliRunner().invoke(
            app,
            [*args, "--cluster", "dev", "--kubeconfig", self.kubeconfig, *extra],
            catch_exceptions=False,
        )
        return result.exit_code, result.stdout, result.stderr

    def json(self, *args: str, repo: bool = True) -> Any:
        code, out, err = self(*args, "-o", "json", repo=repo)
        assert code == 0, err
        return json.loads(out)


def objects(kube_cli: KubeCLI, namespace: str) -> dict[tuple[str, str], str]:
    """Every object a release or its bootstrap writes in `namespace`, with its resourceVersion."""
    found = kube_cli.kubectl("get", "configmaps,secrets,jobs,deployments", "-n", namespace, "-o", "json").stdout
    return {(o["kind"], o["metadata"]["name"]): o["metadata"]["resourceVersion"] for o in json.loads(found)["items"]}


def releases(kube_cli: KubeCLI) -> dict[tuple[str, str], dict[str, Any]]:
    out = json.loads(kube_cli.helm("ls", "-A", "-o", "json").stdout)
    return {(r["namespace"], r["name"]): r for r in out}


def component(name: str, namespace: str, **extra: Any) -> dict[str, Any]:
    return {"chart": f"charts/{name}", "namespace": namespace, **extra}


# -- suspend ---------------------------------------------------------------------------------------------

SUSPEND = {"db": [], "api": ["db"], "web": [], "solo": []}


@pytest.fixture
def suspend_repo(tmp_path: Path) -> Path:
    root = init_repo(tmp_path / "repo")
    for name in SUSPEND:
        write_chart(root, f"charts/{name}")
        write_values(root, "dev", name, {"conf": {"n": 0}})
    spec = {
        "namespace": "fz-db",
        "components": {n: component(n, f"fz-{n}", **({"needs": d} if d else {})) for n, d in SUSPEND.items()},
    }
    write_cluster(root, "dev", spec)
    commit(root, "four components, each in its own namespace")
    return root


def test_suspend_by_cli_and_cluster_yaml_writes_nothing_to_them_while_others_deploy(
    sandbox: RunningSandbox, kube_cli: KubeCLI, helm_bin: Path, tmp_path: Path, suspend_repo: Path
) -> None:
    cli = Cli(sandbox, helm_bin, tmp_path, suspend_repo)
    code, _, err = cli("apply")
    assert code == 0, err

    code, out, err = cli(
        "suspend", "--component", "db", "--reason", "incident 7", "--lease-namespace", LEASE_NS, repo=False
    )
    assert code == 0, err
    assert "component db suspended by " in out and "incident 7" in out
    cm = json.loads(
        kube_cli.kubectl("get", "configmap", "deploy-manager-dev-suspend", "-n", LEASE_NS, "-o", "json").stdout
    )
    entry = json.loads(cm["data"]["component.db"])
    assert entry["reason"] == "incident 7" and entry["source"] == "cli" and "@" in entry["by"] and entry["at"]

    # One commit changes every component and suspends `web` in cluster.yaml.
    for name in SUSPEND:
        write_values(suspend_repo, "dev", name, {"conf": {"n": 1}})
    spec = yaml.safe_load((suspend_repo / "values/dev/cluster.yaml").read_text())
    spec["components"]["web"]["suspend"] = True
    write_cluster(suspend_repo, "dev", spec)
    commit(suspend_repo, "change all; suspend web")

    plan = {a["component"]: a for a in cli.json("plan", "--lease-namespace", LEASE_NS)["actions"]}
    assert (plan["db"]["action"], plan["db"]["state"]) == ("none", "suspended")
    assert "incident 7" in plan["db"]["reasons"][0] and "pending: upgrade" in plan["db"]["reasons"][1]
    assert (plan["web"]["action"], plan["web"]["state"]) == ("none", "suspended")
    assert plan["web"]["reasons"][0] == "component web suspended in cluster.yaml (suspend: true)"
    # api needs db, which is suspended with a change pending: api would write, so it waits.
    assert (
        plan["api"]["action"] == "blocked"
        and plan["api"]["reasons"][0] == "needs db, which is suspended with a change pending"
    )
    assert plan["solo"]["action"] == "upgrade"

    frozen = {n: objects(kube_cli, f"fz-{n}") for n in ("db", "web")}
    code, out, _ = cli("apply", "--lease-namespace", LEASE_NS)
    assert code == 1  # api is blocked
    assert {n: objects(kube_cli, f"fz-{n}") for n in ("db", "web")} == frozen  # 0 writes for them
    rel = releases(kube_cli)
    assert rel[("fz-solo", "solo")]["revision"] == "2"  # the others deploy
    assert rel[("fz-db", "db")]["revision"] == "1" and rel[("fz-web", "web")]["revision"] == "1"

    status = {r["component"]: r for r in cli.json("status", "--lease-namespace", LEASE_NS, repo=False)}
    assert status["db"]["suspended"]["reason"] == "incident 7" and status["solo"]["suspended"] is None
    code, table, _ = cli("status", "--lease-namespace", LEASE_NS, repo=False)
    assert table.splitlines()[0].startswith("component db suspended by ")

    code, out, err = cli("resume", "--component", "db", "--lease-namespace", LEASE_NS, repo=False)
    assert code == 0 and "resumed component db" in out, err
    code, out, err = cli("apply", "--lease-namespace", LEASE_NS)
    assert code == 0, out + err
    rel = releases(kube_cli)
    assert rel[("fz-db", "db")]["revision"] == "2" and rel[("fz-api", "api")]["revision"] == "2"
    assert rel[("fz-web", "web")]["revision"] == "1"  # still suspended in cluster.yaml


def test_suspend_the_whole_cluster_then_resume(
    sandbox: RunningSandbox, kube_cli: KubeCLI, helm_bin: Path, tmp_path: Path, suspend_repo: Path
) -> None:
    cli = Cli(sandbox, helm_bin, tmp_path, suspend_repo)
    code, _, err = cli("suspend", "--lease-namespace", LEASE_NS, "--reason", "maintenance window", repo=False)
    assert code == 0, err
    code, out, _ = cli("apply", "--lease-namespace", LEASE_NS)
    assert code == 0 and releases(kube_cli) == {}  # nothing installed, the run succeeds
    assert {a["state"] for a in cli.json("plan", "--lease-namespace", LEASE_NS)["actions"]} == {"suspended"}
    code, out, _ = cli("resume", "--component", "db", "--lease-namespace", LEASE_NS, repo=False)
    assert code == 0 and "was not suspended" in out  # the cluster's suspension is not a component's
    code, out, _ = cli("resume", "--lease-namespace", LEASE_NS, repo=False)
    assert code == 0 and "resumed cluster" in out
    code, out, err = cli("apply", "--lease-namespace", LEASE_NS)
    assert code == 0, out + err
    assert len(releases(kube_cli)) == len(SUSPEND)


@pytest.mark.parametrize("bad", ["Nova", "a_b", "x" * 60])
def test_suspend_refuses_a_bad_component_name(tmp_path: Path, bad: str) -> None:
    kc = write(tmp_path / "kc", "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    result = CliRunner().invoke(app, ["suspend", "--cluster", "dev", "--component", bad, "--kubeconfig", str(kc)])
    assert result.exit_code == 2 and result.stderr.startswith("error: --component ")
    assert len(result.stderr.strip().splitlines()) == 1


# -- prune -----------------------------------------------------------------------------------------------

NS = "fz-prune"


@pytest.fixture
def prune_repo(tmp_path: Path) -> Path:
    """keep; queue <- worker (worker has a bootstrap step, run as a Job)."""
    root = init_repo(tmp_path / "repo")
    for name in ("keep", "queue", "worker"):
        write_chart(root, f"charts/{name}")
        write_values(root, "dev", name, {"conf": {"n": 0}, "images": {"tags": {"tool": "registry.local/tool:1"}}})
    write(root / "bootstrap/worker/migrate.sh.j2", "#!/bin/sh\necho migrate {{ component }}\n")
    spec = {
        "namespace": NS,
        "components": {
            "keep": component("keep", NS),
            "queue": component("queue", NS),
            "worker": component(
                "worker", NS, needs=["queue"], bootstrap=[{"name": "migrate", "image": "tool", "timeout": 60}]
            ),
        },
    }
    write_cluster(root, "dev", spec)
    commit(root, "keep, queue, worker")
    return root


def _remove(repo: Path, *names: str, prune: bool) -> None:
    spec = yaml.safe_load((repo / "values/dev/cluster.yaml").read_text())
    for name in names:
        spec["components"].pop(name)
    spec["prune"] = prune
    write_cluster(repo, "dev", spec)
    write_values(repo, "dev", "keep", {"conf": {"n": int(prune) + 1}})
    commit(repo, f"remove {', '.join(names)} (prune: {prune})")


def test_a_removed_component_is_orphaned_then_pruned_after_the_rest_dependents_first(
    sandbox: RunningSandbox, kube_cli: KubeCLI, helm_bin: Path, tmp_path: Path, prune_repo: Path
) -> None:
    cli = Cli(sandbox, helm_bin, tmp_path, prune_repo)
    code, out, err = cli("apply")
    assert code == 0, out + err
    jobs = json.loads(kube_cli.kubectl("get", "jobs", "-n", NS, "-o", "json").stdout)["items"]
    assert [j["metadata"]["labels"]["deploy-manager.io/component"] for j in jobs] == ["worker"]
    # Releases we never installed, named like the ones to be pruned: in another namespace, and beside them.
    chart = str(prune_repo / "charts/worker")
    kube_cli.helm("install", "worker", chart, "-n", "fz-foreign", "--create-namespace")
    kube_cli.helm("install", "legacy", chart, "-n", NS)

    _remove(prune_repo, "queue", "worker", prune=False)
    plan = {a["component"]: a for a in cli.json("plan")["actions"]}
    for name in ("queue", "worker"):
        assert (plan[name]["state"], plan[name]["action"]) == ("orphaned", "none")
        assert plan[name]["reasons"][0].startswith(f"component {name} is no longer in cluster.yaml")
    assert set(plan) == {"keep", "queue", "worker"}  # foreign releases are not ours: not even reported
    code, out, err = cli("apply")
    assert code == 0, out + err
    assert ("fz-prune", "worker") in releases(kube_cli)  # kept without prune: true

    _remove(prune_repo, prune=True)
    plan = {a["component"]: a for a in cli.json("plan")["actions"]}
    assert plan["worker"]["action"] == "uninstall" and plan["queue"]["action"] == "uninstall"
    assert "worker" in plan["queue"]["needs"] and "keep" in plan["worker"]["needs"]
    run = cli.json("apply")
    assert run["status"] == "succeeded", run
    steps = {s["component"]: s for s in run["steps"] if s["action"] in ("upgrade", "uninstall")}
    assert steps["keep"]["status"] == steps["worker"]["status"] == steps["queue"]["status"] == "succeeded"
    # After the rest succeeded, dependents first.
    assert steps["keep"]["finished_at"] <= steps["worker"]["started_at"]
    assert steps["worker"]["finished_at"] <= steps["queue"]["started_at"]
    assert steps["worker"]["reasons"][0].startswith("pruned: uninstalled release fz-prune/worker")
    rel = releases(kube_cli)
    assert ("fz-prune", "worker") not in rel and ("fz-prune", "queue") not in rel
    assert ("fz-foreign", "worker") in rel and ("fz-prune", "legacy") in rel  # never a release without our labels
    assert json.loads(kube_cli.kubectl("get", "jobs", "-n", NS, "-o", "json").stdout)["items"] == []
    scripts = kube_cli.kubectl("get", "configmaps", "-n", NS, "-l", "deploy-manager.io/component=worker", "-o", "json")
    assert json.loads(scripts.stdout)["items"] == []  # the Jobs' script ConfigMaps went with them

    again = cli.json("plan")["actions"]
    assert [(a["component"], a["action"]) for a in again] == [("keep", "none")]


def test_a_commit_that_fails_preflight_prunes_nothing(
    sandbox: RunningSandbox, kube_cli: KubeCLI, helm_bin: Path, tmp_path: Path, prune_repo: Path
) -> None:
    cli = Cli(sandbox, helm_bin, tmp_path, prune_repo)
    assert cli("apply")[0] == 0
    spec = yaml.safe_load((prune_repo / "values/dev/cluster.yaml").read_text())
    spec["components"].pop("queue")
    spec["components"].pop("worker")
    spec["components"]["broken"] = component("broken", NS)
    spec["prune"] = True
    write_chart(prune_repo, "charts/broken", template='{{ fail "broken on purpose" }}\n')
    write_cluster(prune_repo, "dev", spec)
    commit(prune_repo, "a broken component next to the prune")
    # The pre-flight render fails before anything is written: the prune never starts.
    code, _, err = cli("apply")
    assert code == 2 and "broken on purpose" in err
    rel = releases(kube_cli)
    assert ("fz-prune", "worker") in rel and ("fz-prune", "queue") in rel
