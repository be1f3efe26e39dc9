"""The deploy-manager's own chart and image: lint clean, valid against the Kubernetes v1.35 schemas."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock

import kubernetes_validate
import pytest
import yaml

from deploy_manager.config import ENV_PREFIX, SECRET_FIELDS, Settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "deploy-manager"
HELM = str(ROOT / ".tools" / "bin" / "helm")
REQUIRED = ["--set", "config.repoUrl=https://git.example.com/cloud/deploy.git", "--set", "config.cluster=prod-east-1"]


def _template(*extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HELM, "template", "dm", str(CHART), "--namespace", "deploy-manager", *extra],
        capture_output=True,
        text=True,
    )


def test_lint_strict() -> None:
    result = subprocess.run([HELM, "lint", "--strict", str(CHART), *REQUIRED], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rendered_objects_are_valid_kubernetes() -> None:
    result = _template(*REQUIRED)
    assert result.returncode == 0, result.stderr
    objects = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    kinds = sorted(obj["kind"] for obj in objects)
    assert kinds == ["ClusterRoleBinding", "Deployment", "PersistentVolumeClaim", "Service", "ServiceAccount"]
    for obj in objects:
        kubernetes_validate.validate(obj, "1.35.0", strict=True)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    # Self-upgrade safety: the old pod must finish before the new one starts.
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DM_CLUSTER"] == "prod-east-1"
    assert "DM_GITHUB_WEBHOOK_SECRET" not in env  # secrets only via mounted files


@pytest.mark.parametrize(
    ("missing", "given"),
    [
        ("config.repoUrl", ["--set", "config.cluster=prod-east-1"]),
        ("config.cluster", ["--set", "config.repoUrl=https://git.example.com/cloud/deploy.git"]),
    ],
)
def test_required_settings_fail_clearly(missing: str, given: list[str]) -> None:
    result = _template(*given)
    assert result.returncode != 0
    assert f"{missing} is required" in result.stderr


def test_dockerfile_lints_clean() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_setting_the_chart_passes_is_one_the_service_reads(tmp_path: Path) -> None:
    """The chart and `Settings` must agree on names, or a deployed pod silently runs on defaults."""
    result = _template(*REQUIRED)
    assert result.returncode == 0, result.stderr
    deployment = next(o for o in yaml.safe_load_all(result.stdout) if o and o["kind"] == "Deployment")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    fields = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    secret_files = {f"{ENV_PREFIX}{name.upper()}_FILE" for name in SECRET_FIELDS}
    passed = {name for name in env if name.startswith(ENV_PREFIX)}
    assert passed - fields - secret_files == set()
    assert secret_files <= passed  # every secret comes from the mounted Secret
    # And the service starts from exactly these settings (files of the optional Secret absent here).
    settings_env = {k: v for k, v in env.items() if k in fields and v is not None}
    settings_env[f"{ENV_PREFIX}STATE_DIR"] = str(tmp_path)
    with mock.patch.dict(os.environ, settings_env, clear=False):
        settings = Settings()
    assert settings.cluster == "prod-east-1" and settings.port == 8080 and settings.github_webhook_secret is None


def test_the_pod_grace_period_covers_the_shutdown_grace_and_ending_helm() -> None:
    """On SIGTERM the service waits DM_SHUTDOWN_GRACE_SECONDS, then ends helm (which needs a moment to record
    the release failed) and releases the Lease: the kubelet must not SIGKILL it before that."""
    from deploy_manager.helm.runner import END_GRACE_SECONDS

    result = _template(*REQUIRED)
    assert result.returncode == 0, result.stderr
    deployment = next(d for d in yaml.safe_load_all(result.stdout) if d and d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    grace = float(env.get("DM_SHUTDOWN_GRACE_SECONDS") or Settings.model_fields["shutdown_grace_seconds"].default)
    assert pod["terminationGracePeriodSeconds"] >= grace + END_GRACE_SECONDS + 30
