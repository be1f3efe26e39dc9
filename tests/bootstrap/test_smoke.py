"""`SmokeJobs`: a check as a Job on the sandbox — its name, pod, mounts, env, log tail with secrets redacted,
timeout and history (issue 14)."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy_manager.bootstrap.smoke import SmokeJobs
from deploy_manager.checks import run_checks
from deploy_manager.kube.client import KubeClient
from deploy_manager.models.smoke import SmokeStatus
from tests.corelib import commit
from tests.smokelib import CHECKS, SmokeEnv, build

pytestmark = [pytest.mark.helm]


@pytest.fixture
def env(tmp_path: Path, sandbox: Any, helm_bin: str) -> SmokeEnv:
    return build(tmp_path, sandbox, helm_bin)


def kubectl(env: SmokeEnv, kubectl_bin: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        [str(kubectl_bin), "--kubeconfig", str(env.kubeconfig), *args],
        input=stdin,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def test_the_job_gets_the_component_config_and_secret_env_and_the_tail_hides_secret_values(
    env: SmokeEnv, kubectl_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = env.root / "values/dev/keystone.yaml"
    values = yaml.safe_load(path.read_text())
    values["secrets"] = {"keystone_admin": {"name": "keystone-admin", "key": "password"}}
    path.write_text(yaml.safe_dump(values))
    commit(env.root, "keystone admin secret")
    assert env.apply().status.value == "succeeded"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "keystone-admin", "namespace": env.namespace},
        "data": {"password": base64.b64encode(b"hunter2-very-secret").decode()},
    }
    kubectl(env, kubectl_bin, "apply", "-f", "-", stdin=json.dumps(secret))
    etc = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keystone-etc", "namespace": env.namespace}}
    kubectl(env, kubectl_bin, "apply", "-f", "-", stdin=json.dumps(etc))
    jobs = SmokeJobs(KubeClient(kubeconfig=env.kubeconfig))
    # As if the script had printed its password: the tail must not carry it.
    monkeypatch.setattr(jobs.api, "pod_log", lambda *a, **k: "auth as admin with hunter2-very-secret: ok\n")
    desired = env.pipeline().desired(env.source(), "dev", "HEAD")
    token = next(c for c in desired.smoke if c.name == "token-issue")
    (result,) = run_checks(jobs, desired, [token], store=None)
    assert result.status is SmokeStatus.passed, result
    assert "hunter2-very-secret" not in result.log_tail and "auth as admin with" in result.log_tail
    job = json.loads(kubectl(env, kubectl_bin, "get", "job", result.job, "-n", env.namespace, "-o", "json"))
    assert job["metadata"]["labels"]["deploy-manager.io/smoke-check"] == "token-issue"
    assert "deploy-manager.io/step" not in job["metadata"]["labels"]  # never taken for a bootstrap step
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "example/osc:1" and job["spec"]["activeDeadlineSeconds"] == 30
    assert {"name": "etc", "secret": {"secretName": "keystone-etc", "defaultMode": 0o444}} in pod["volumes"]
    assert [e["name"] for e in container["env"]] == ["SECRET_KEYSTONE_ADMIN"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    script = kubectl(env, kubectl_bin, "get", "configmap", result.job, "-n", env.namespace, "-o", "json")
    assert "checking keystone" in json.loads(script)["data"]["script.sh"]


@pytest.mark.kubesim_only("slows a Job through /_sandbox/")
def test_a_check_past_its_timeout_fails_and_its_job_is_deleted(env: SmokeEnv, kubectl_bin: Path) -> None:
    assert env.apply().status.value == "succeeded"
    env.sandbox.inject_fault(type="slow", kind="Job", namespace=env.namespace, name="smoke-image-list-*", seconds=30)
    checks = [dict(c) for c in CHECKS]
    checks[1]["timeout"] = 1
    env.set_checks(checks)
    desired = env.pipeline().desired(env.source(), "dev", "HEAD")
    image = next(c for c in desired.smoke if c.name == "image-list")
    (result,) = run_checks(SmokeJobs(KubeClient(kubeconfig=env.kubeconfig)), desired, [image], store=None)
    assert result.status is SmokeStatus.failed and "did not finish within 1s" in result.error
    names = kubectl(env, kubectl_bin, "get", "jobs", "-n", env.namespace, "-o", "name")
    assert result.job not in names


def test_only_the_newest_jobs_of_a_check_are_kept(env: SmokeEnv, kubectl_bin: Path) -> None:
    assert env.apply().status.value == "succeeded"
    desired = env.pipeline().desired(env.source(), "dev", "HEAD")
    token = next(c for c in desired.smoke if c.name == "token-issue")
    jobs = SmokeJobs(KubeClient(kubeconfig=env.kubeconfig), history=2)
    made = [run_checks(jobs, desired, [token], store=None)[0].job for _ in range(4)]
    left = kubectl(env, kubectl_bin, "get", "jobs", "-n", env.namespace, "-o", "name").split()
    mine = sorted(n.removeprefix("job.batch/") for n in left if "smoke-token-issue-" in n)
    assert mine == sorted(made[-2:])
