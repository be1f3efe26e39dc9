"""`deploy-manager smoke --repo R --cluster C [--check NAME] [-o json]` on the sandbox (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from deploy_manager.cli import app
from deploy_manager.store.sqlite import RunStore
from tests.smokelib import SmokeEnv, build

pytestmark = [pytest.mark.helm]


@pytest.fixture
def env(tmp_path: Path, sandbox: Any, helm_bin: str) -> SmokeEnv:
    return build(tmp_path, sandbox, helm_bin)


def cli(env: SmokeEnv, *args: str) -> Any:
    common = ["--kubeconfig", str(env.kubeconfig), "--state-dir", str(env.state), "--helm-bin", env.helm_bin]
    return CliRunner().invoke(app, ["smoke", "--repo", str(env.root), "--cluster", "dev", *args, *common])


def test_smoke_runs_every_check_now_and_stores_the_results(env: SmokeEnv) -> None:
    assert env.apply().status.value == "succeeded"
    res = cli(env, "-o", "json")
    assert res.exit_code == 0, res.stdout + res.stderr
    out = json.loads(res.stdout)
    assert [r["name"] for r in out] == ["token-issue", "image-list", "server-boot"]
    for r in out:
        assert {"name", "component", "status", "duration", "finished_at", "run_id", "log_tail"} <= set(r)
        assert r["status"] == "passed" and r["run_id"] is None and r["job"].startswith(f"smoke-{r['name']}-")
    latest = {r.name: r for r in RunStore.in_dir(env.state).latest_smoke("dev")}
    assert latest["server-boot"].run_id is None and latest["server-boot"].status.value == "passed"
    table = cli(env, "--check", "token-issue")
    assert table.exit_code == 0 and "token-issue" in table.stdout and "image-list" not in table.stdout
    assert table.stdout.rstrip().endswith("1 of 1 checks passed")


@pytest.mark.kubesim_only("injects a job-fail fault through /_sandbox/")
def test_a_failing_check_exits_1(env: SmokeEnv) -> None:
    assert env.apply().status.value == "succeeded"
    env.sandbox.inject_fault(type="job-fail", namespace=env.namespace, name="smoke-image-list-*")
    res = cli(env, "-o", "json")
    assert res.exit_code == 1
    statuses = {r["name"]: r["status"] for r in json.loads(res.stdout)}
    assert statuses == {"token-issue": "passed", "image-list": "failed", "server-boot": "passed"}


def test_an_unknown_check_is_one_line_exit_2(env: SmokeEnv) -> None:
    res = cli(env, "--check", "nope")
    assert res.exit_code == 2
    assert res.stderr.strip().count("\n") == 0
    assert "no check 'nope' in values/_common/smoke.yaml or values/dev/smoke.yaml" in res.stderr


def test_a_never_deployed_component_is_an_error_result_not_a_crash(env: SmokeEnv) -> None:
    res = cli(env, "--check", "token-issue", "-o", "json")
    assert res.exit_code == 1, res.stdout + res.stderr
    (only,) = json.loads(res.stdout)
    assert only["status"] == "error" and env.namespace in only["error"]
