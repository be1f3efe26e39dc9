"""The deploy-manager's own chart and image: lint clean, valid against the Kubernetes v1.35 schemas.

Rendered with the defaults and with production-like values (`production-values.yaml`: namespaced RBAC,
ingress, network policy, existing claim, pinned digest …). Proven here: what the chart renders; whether the
RBAC it renders suffices on a real API server is for the real-control-plane tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import kubernetes_validate
import pytest
import yaml

from deploy_manager.config import ENV_PREFIX, FILE_FIELDS, Settings
from tests.podsecurity import restricted_violations

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "deploy-manager"
HELM = str(ROOT / ".tools" / "bin" / "helm")
REQUIRED = ["--set", "config.repoUrl=https://git.example.com/cloud/deploy.git", "--set", "config.cluster=prod-east-1"]
PRODUCTION = ["--values", str(Path(__file__).with_name("production-values.yaml"))]


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
    secret_files = {f"{ENV_PREFIX}{name.upper()}_FILE" for name in FILE_FIELDS}
    passed = {name for name in env if name.startswith(ENV_PREFIX)}
    assert passed - fields - secret_files == set()
    assert secret_files <= passed  # every secret comes from the mounted Secret
    # And the service starts from exactly these settings (files of the optional Secret absent here).
    settings_env = {k: v for k, v in env.items() if k in fields and v is not None}
    settings_env[f"{ENV_PREFIX}STATE_DIR"] = str(tmp_path)
    with mock.patch.dict(os.environ, settings_env, clear=False):
        settings = Settings()
    assert settings.cluster == "prod-east-1" and settings.port == 8080 and settings.github_webhook_secret is None


def _objects(*extra: str) -> list[dict[str, Any]]:
    result = _template(*extra)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == "Deployment")


def _env(objects: list[dict[str, Any]]) -> dict[str, Any]:
    container = _deployment(objects)["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_production_values_lint_strict_and_are_valid_kubernetes() -> None:
    result = subprocess.run([HELM, "lint", "--strict", str(CHART), *PRODUCTION], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    objects = _objects(*PRODUCTION)
    for obj in objects:
        kubernetes_validate.validate(obj, "1.35.0", strict=True)
    kinds = sorted(f"{o['kind']}/{o['metadata'].get('namespace', '')}" for o in objects)
    assert kinds == [
        "Deployment/deploy-manager", "Ingress/deploy-manager", "NetworkPolicy/deploy-manager",
        "Role/deploy-manager", "Role/openstack", "Role/openstack-infra",
        "RoleBinding/deploy-manager", "RoleBinding/openstack", "RoleBinding/openstack-infra",
        "Service/deploy-manager", "ServiceAccount/deploy-manager",
    ]  # fmt: skip  (no PVC: existingClaim; no cluster-scoped RBAC: namespaced)
    pod = _deployment(objects)["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"].endswith("@sha256:" + "0123456789abcdef" * 4)
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "deploy-manager-history"
    assert pod["serviceAccountName"] == "deploy-manager" and pod["imagePullSecrets"] == [{"name": "ghcr-pull"}]
    assert pod["nodeSelector"] and pod["tolerations"] and pod["affinity"]
    sa = next(o for o in objects if o["kind"] == "ServiceAccount")
    assert "eks.amazonaws.com/role-arn" in sa["metadata"]["annotations"]


@pytest.mark.parametrize("values", [REQUIRED, PRODUCTION], ids=["default", "production"])
def test_manager_pod_passes_the_restricted_profile(values: list[str]) -> None:
    pod = _deployment(_objects(*values))["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("values", [REQUIRED, PRODUCTION], ids=["default", "production"])
def test_settings_the_chart_passes_load(values: list[str], tmp_path: Path) -> None:
    env = {k: v for k, v in _env(_objects(*values)).items() if k.startswith(ENV_PREFIX) and v is not None}
    fields = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    env = {k: v for k, v in env.items() if k in fields}
    env[f"{ENV_PREFIX}STATE_DIR"] = str(tmp_path)
    with mock.patch.dict(os.environ, env, clear=False):
        settings = Settings()
    if values is PRODUCTION:
        assert settings.namespaces == ("openstack", "openstack-infra")
        assert settings.job_pod_security_context is not None
        assert settings.job_pod_security_context["runAsUser"] == 42424
        assert settings.job_resources == {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
        assert settings.shutdown_grace_seconds == 1800 - 30 and settings.max_parallel == 6
        assert settings.git_username == "deploy-bot" and settings.trigger_quiet_seconds == 5
    else:
        assert settings.namespaces == () and settings.shutdown_grace_seconds == 900 - 30


def test_namespaced_rbac_holds_no_wildcard_and_nothing_cluster_scoped() -> None:
    objects = _objects(*PRODUCTION)
    assert not [o for o in objects if o["kind"].startswith("Cluster")]
    for role in (o for o in objects if o["kind"] == "Role"):
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule.get("resources", []), rule
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
            assert not {"pods/exec", "pods/attach", "serviceaccounts/token"} & set(rule.get("resources", []))
    lease = next(o for o in objects if o["kind"] == "Role" and o["metadata"]["name"].endswith("-lease"))
    assert lease["metadata"]["namespace"] == "deploy-manager" and lease["rules"][0]["resources"] == ["leases"]


def test_rbac_rules_mode_binds_exactly_the_given_rules() -> None:
    rules = '[{"apiGroups":["*"],"resources":["*"],"verbs":["get","list"]}]'
    objects = _objects(*REQUIRED, "--set", "rbac.mode=rules", "--set-json", f"rbac.rules={rules}")
    role = next(o for o in objects if o["kind"] == "ClusterRole")
    assert role["rules"] == [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list"]}]
    binding = next(o for o in objects if o["kind"] == "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_default_rbac_says_what_it_is() -> None:
    binding = next(o for o in _objects(*REQUIRED) if o["kind"] == "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == "cluster-admin"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "rbac.bogus=true"], "additional properties 'bogus' not allowed"),
        (["--set", "config.maxParalel=2"], "additional properties 'maxParalel' not allowed"),
        (["--set", "rbac.mode=admin"], "rbac/mode"),
        (["--set", "rbac.mode=namespaced"], "rbac.mode=namespaced needs rbac.namespaces"),
        (["--set", "rbac.mode=rules"], "rbac.mode=rules needs rbac.rules"),
        (["--set", "terminationGracePeriodSeconds=300"], "terminationGracePeriodSeconds=300 is shorter than"),
        (["--set", "config.repoUrl=https://x-access-token:ghp_abc@github.com/o/r.git"], "must not carry credentials"),
    ],
)
def test_bad_values_are_refused(extra: list[str], message: str) -> None:
    result = _template(*REQUIRED, *extra)
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert "ghp_abc" not in result.stderr


def test_grace_covers_the_longest_helm_timeout() -> None:
    # 600 s helm timeout + 30 s helm margin + 30 s to exit: 660 is just enough, 659 is refused.
    assert _template(*REQUIRED, "--set", "terminationGracePeriodSeconds=660").returncode == 0
    assert _template(*REQUIRED, "--set", "terminationGracePeriodSeconds=659").returncode != 0
    env = _env(_objects(*REQUIRED, "--set", "terminationGracePeriodSeconds=1200"))
    assert env["DM_SHUTDOWN_GRACE_SECONDS"] == "1170"


def test_memory_is_sized_for_max_parallel_helm_processes() -> None:
    def memory(*extra: str) -> dict[str, Any]:
        pod = _deployment(_objects(*REQUIRED, *extra))["spec"]["template"]["spec"]
        resources: dict[str, Any] = pod["containers"][0]["resources"]
        return resources

    assert memory()["limits"]["memory"] == f"{256 + 4 * 192}Mi" == memory()["requests"]["memory"]
    assert memory("--set", "config.maxParallel=8")["limits"]["memory"] == f"{256 + 8 * 192}Mi"
    assert memory("--set", "resources.limits.memory=3Gi")["limits"] == {"memory": "3Gi"}


def test_without_persistence_the_state_is_an_emptydir() -> None:
    objects = _objects(*REQUIRED, "--set", "persistence.enabled=false")
    assert "PersistentVolumeClaim" not in {o["kind"] for o in objects}
    assert _deployment(objects)["spec"]["template"]["spec"]["volumes"][0] == {"name": "state", "emptyDir": {}}
    notes = subprocess.run(
        [HELM, "install", "dm", str(CHART), "--dry-run=client", *REQUIRED, "--set", "persistence.enabled=false"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert "run history and the git mirror are lost" in notes.stdout


# What the manager's own code asks of the API in a component namespace (kube/client.py, kube/jobs.py) and in its
# own namespace (lease.py); helm's needs depend on the charts and are checked on a real API server elsewhere.
OWN_CALLS = [
    ("", "secrets", "list"), ("", "secrets", "get"), ("", "secrets", "create"), ("", "secrets", "update"),
    ("batch", "jobs", "list"), ("batch", "jobs", "get"), ("batch", "jobs", "create"), ("batch", "jobs", "delete"),
    ("", "configmaps", "create"), ("", "configmaps", "update"), ("", "pods", "list"), ("", "pods/log", "get"),
    # A chart's bootstrap ServiceAccount, Role and RoleBinding, created before its `before` steps (bootstrap/rbac.py).
    ("", "serviceaccounts", "get"), ("", "serviceaccounts", "create"),
    ("rbac.authorization.k8s.io", "roles", "get"), ("rbac.authorization.k8s.io", "roles", "create"),
    ("rbac.authorization.k8s.io", "roles", "update"), ("rbac.authorization.k8s.io", "rolebindings", "get"),
    ("rbac.authorization.k8s.io", "rolebindings", "create"), ("rbac.authorization.k8s.io", "rolebindings", "update"),
]  # fmt: skip
LEASE_CALLS = [("coordination.k8s.io", "leases", verb) for verb in ("get", "create", "update")]
# The suspend ConfigMap next to the Lease (kube/suspend.py).
LEASE_CALLS += [("", "configmaps", verb) for verb in ("get", "create", "update")]


def _allows(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(
        ({group, "*"} & set(r.get("apiGroups", []))) and ({resource, "*"} & set(r.get("resources", [])))
        and ({verb, "*"} & set(r["verbs"]))
        for r in rules
    )


def test_namespaced_roles_cover_the_managers_own_api_calls() -> None:
    objects = _objects(*PRODUCTION)
    roles = {(o["metadata"]["namespace"], o["metadata"]["name"]): o["rules"] for o in objects if o["kind"] == "Role"}
    for namespace in ("openstack", "openstack-infra"):
        missing = [c for c in OWN_CALLS if not _allows(roles[(namespace, "dm")], *c)]
        assert missing == [], f"{namespace}: {missing}"
    lease_rules = roles[("deploy-manager", "dm-lease")]
    assert [c for c in LEASE_CALLS if not _allows(lease_rules, *c)] == []


def test_tmp_holding_values_and_git_credentials_is_in_memory() -> None:
    def tmp(*extra: str) -> dict[str, Any]:
        volumes = _deployment(_objects(*REQUIRED, *extra))["spec"]["template"]["spec"]["volumes"]
        return dict(next(v for v in volumes if v["name"] == "tmp")["emptyDir"])

    assert tmp() == {"medium": "Memory", "sizeLimit": "64Mi"}
    assert tmp("--set", "tmpVolume.medium=") == {"sizeLimit": "64Mi"}


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
    assert pod["terminationGracePeriodSeconds"] >= grace + END_GRACE_SECONDS + 10


RULES_EXAMPLE = CHART / "examples" / "rbac-rules.yaml"
DEMO_CHARTS = ["ingress", "rabbitmq", "memcached", "keystone", "glance", "placement", "nova", "neutron", "cinder",
               "horizon"]  # fmt: skip


def _plural(kind: str) -> str:
    low = kind.lower()
    return low + "es" if low.endswith("s") else low[:-1] + "ies" if low.endswith("y") else low + "s"


def _demo_objects() -> list[dict[str, Any]]:
    """What the demo cluster's charts render, with its values layers."""
    out: list[dict[str, Any]] = []
    for name in DEMO_CHARTS:
        layers = [ROOT / "values/_common/_global.yaml", ROOT / f"values/_common/{name}.yaml",
                  ROOT / "values/demo/_global.yaml", ROOT / f"values/demo/{name}.yaml"]  # fmt: skip
        files = [arg for layer in layers if layer.exists() for arg in ("-f", str(layer))]
        result = subprocess.run([HELM, "template", name, str(ROOT / "charts/openstack" / name), *files],
                                capture_output=True, text=True)  # fmt: skip
        assert result.returncode == 0, result.stderr
        out += [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return out


def test_the_narrow_rules_example_holds_no_escalation_and_covers_the_managers_calls() -> None:
    objects = _objects(*REQUIRED, "-f", str(RULES_EXAMPLE))
    role = next(o for o in objects if o["kind"] == "ClusterRole")
    rules = role["rules"]
    assert rules == yaml.safe_load(RULES_EXAMPLE.read_text())["rbac"]["rules"]
    for rule in rules:
        assert "*" not in rule["verbs"] + rule["apiGroups"] + rule["resources"], rule
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
        assert not {"pods/exec", "pods/attach", "serviceaccounts/token"} & set(rule["resources"]), rule
    assert [c for c in OWN_CALLS + LEASE_CALLS if not _allows(rules, *c)] == []
    # Each rule says why it is there: a comment right above it in the file.
    lines = RULES_EXAMPLE.read_text().splitlines()
    starts = [i for i, ln in enumerate(lines) if ln.strip().startswith("- apiGroups:")]
    assert len(starts) == len(rules) and all(lines[i - 1].strip().startswith("#") for i in starts)


def test_the_narrow_rules_cover_what_the_demo_charts_render_and_grant() -> None:
    """Static check of what the real API server enforces (test_rbac_on_kube.py runs it): the manager may create
    every kind the demo charts render, and holds every right their Roles and ClusterRoles grant (no escalate)."""
    rules = yaml.safe_load(RULES_EXAMPLE.read_text())["rbac"]["rules"]
    objects = _demo_objects()
    missing: set[tuple[str, str, str]] = set()
    for obj in objects:
        group = obj["apiVersion"].rpartition("/")[0]
        for verb in ("get", "create", "patch", "delete"):
            if not _allows(rules, group, _plural(obj["kind"]), verb):
                missing.add((group, _plural(obj["kind"]), verb))
        if obj["kind"] in ("Role", "ClusterRole"):
            for rule in obj.get("rules") or []:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        held = {v for v in rule["verbs"] if _allows(rules, group, resource, v)}
                        missing |= {(group, resource, v) for v in set(rule["verbs"]) - held}
    assert not missing, sorted(missing)
