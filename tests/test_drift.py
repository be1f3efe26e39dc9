"""Drift of live objects on the sandbox, with real helm and kubectl: `kubectl scale`, `set image`, `delete`,
a Secret a Job fills in (ignored), defaults the API server adds (not drift), and the cost of one check."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from deploy_manager.cli import app
from deploy_manager.pipeline import Pipeline
from deploy_manager.source.git import GitSource
from tests.corelib import (
    api_deployment,
    apply_succeeded,
    commit,
    init_repo,
    sandbox_pipeline,
    write_chart,
    write_cluster,
    write_values,
)

pytestmark = pytest.mark.helm

_ns = itertools.count()

CHART = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-conf
data:
  app.conf: "debug = {{ .Values.debug }}"
---
apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-fernet-keys
data:
  "0": {{ "placeholder" | b64enc | quote }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}-api
spec:
  selector: {app: {{ .Release.Name }}-api}
  ports:
    - {name: http, port: 5000}
""" + api_deployment(
    container="""\
          ports: [{containerPort: 5000}]
          env: [{name: DEBUG, value: "{{ .Values.debug }}"}]
"""
)


class Env:
    def __init__(self, tmp_path: Path, sandbox: Any, kube_cli: Any, helm_bin: Path) -> None:
        self.root = init_repo(tmp_path / "repo")
        self.state = tmp_path / "state"
        self.ns = f"drift-{next(_ns)}"
        self.kubeconfig = Path(sandbox.kubeconfig)
        self.sandbox, self.kube_cli, self.helm_bin = sandbox, kube_cli, str(helm_bin)
        write_chart(self.root, "charts/openstack/keystone", template=CHART)
        write_chart(self.root, "charts/openstack/glance", template=CHART)
        self.spec: dict[str, Any] = {
            "namespace": self.ns,
            "components": {
                "keystone": {"chart": "charts/openstack/keystone"},
                "glance": {"chart": "charts/openstack/glance", "needs": ["keystone"]},
            },
        }
        write_cluster(self.root, "dev", self.spec)
        write_values(self.root, "dev", "keystone", {"debug": False})
        write_values(self.root, "dev", "glance", {"debug": False})
        commit(self.root, "init")

    def set_drift(self, drift: dict[str, Any], component: str | None = None) -> None:
        (self.spec["components"][component] if component else self.spec)["drift"] = drift
        write_cluster(self.root, "dev", self.spec)
        commit(self.root, "drift settings")

    def pipeline(self) -> Pipeline:
        return sandbox_pipeline(self.helm_bin, self.kubeconfig, self.state)

    def source(self) -> GitSource:
        return GitSource(str(self.root))

    def apply(self) -> Any:
        return apply_succeeded(self.pipeline(), self.root)

    def drift(self) -> dict[str, list[dict[str, Any]]]:
        report = self.pipeline().drift(GitSource(str(self.root)), "dev", "HEAD")
        return {name: [i.to_dict() for i in c.items] for name, c in report.components.items()}

    def kubectl(self, *args: str) -> str:
        return str(self.kube_cli.kubectl("-n", self.ns, *args).stdout)

    def cli(self, *args: str) -> Any:
        base = ["--cluster", "dev", "--kubeconfig", str(self.kubeconfig), "--state-dir", str(self.state)]
        return CliRunner().invoke(app, [*args, *base], catch_exceptions=False)


@pytest.fixture
def env(tmp_path: Path, sandbox_module: Any, kube_cli_module: Any, helm_bin: Path) -> Env:
    return Env(tmp_path, sandbox_module, kube_cli_module, helm_bin)


def test_a_fresh_install_has_no_drift_despite_api_defaults(env: Env) -> None:
    env.apply()
    live = json.loads(env.kubectl("get", "deployment", "keystone-api", "-o", "json"))
    # The API server added defaults the manifest does not set: none of them is drift.
    assert live["spec"]["strategy"]["type"] == "RollingUpdate" and live["spec"]["revisionHistoryLimit"] == 10
    service = json.loads(env.kubectl("get", "service", "keystone-api", "-o", "json"))
    assert service["spec"]["ports"][0]["protocol"] == "TCP" and service["spec"]["clusterIP"]
    assert env.drift() == {"keystone": [], "glance": []}


def test_scale_set_image_and_delete_are_drift_with_field_paths(env: Env) -> None:
    env.apply()
    env.kubectl("scale", "deployment", "keystone-api", "--replicas=3")
    env.kubectl("set", "image", "deployment/glance-api", "api=registry.example/glance:evil")
    env.kubectl("set", "env", "deployment/glance-api", "DEBUG=True")
    env.kubectl("delete", "configmap", "keystone-conf")
    drift = env.drift()
    assert drift["keystone"] == [
        {"kind": "ConfigMap", "namespace": env.ns, "name": "keystone-conf", "paths": ["<missing>"], "missing": True},
        {"kind": "Deployment", "namespace": env.ns, "name": "keystone-api", "paths": ["spec.replicas"]},
    ]
    assert drift["glance"] == [
        {
            "kind": "Deployment",
            "namespace": env.ns,
            "name": "glance-api",
            "paths": [
                "spec.template.spec.containers[api].env[DEBUG].value",
                "spec.template.spec.containers[api].image",
            ],
        }
    ]
    # The CLI: `drift -o json` and `status -o json`.
    result = env.cli("drift", "--repo", str(env.root), "-o", "json")
    assert result.exit_code == 0, result.stderr
    rows = {r["component"]: r for r in json.loads(result.stdout)}
    assert rows["keystone"]["drifted"] is True and rows["keystone"]["drift"] == drift["keystone"]
    result = env.cli("status", "-o", "json")
    assert result.exit_code == 0, result.stderr
    status = {r["component"]: r for r in json.loads(result.stdout)}
    assert status["glance"]["drifted"] is True and status["glance"]["drift"] == drift["glance"]
    text = env.cli("drift", "--repo", str(env.root)).stdout
    assert "keystone-conf: missing" in text and "spec.replicas" in text


def test_an_ignored_secret_filled_by_a_job_is_not_drift(env: Env) -> None:
    env.set_drift({"ignore": [{"kind": "Secret", "name": "keystone-fernet-keys"}]}, component="keystone")
    env.set_drift({"ignore": [{"kind": "Deployment", "name": "*-api", "paths": ["spec.replicas"]}]})
    env.apply()
    # What keystone's fernet-setup Job does: write the keys into the Secret (its own field manager).
    for name in ("keystone-fernet-keys", "glance-fernet-keys"):
        env.kubectl("patch", "secret", name, "--field-manager=fernet-setup", "-p", '{"data": {"0": "a2V5"}}')
    env.kubectl("scale", "deployment", "glance-api", "--replicas=2")  # the cluster's ignore rule (e.g. an HPA)
    drift = env.drift()
    assert drift["keystone"] == []
    assert drift["glance"] == [
        {"kind": "Secret", "namespace": env.ns, "name": "glance-fernet-keys", "paths": ["data.0"]}
    ]
    # `status` without the repo applies the settings the last check recorded.
    status = {r["component"]: r for r in json.loads(env.cli("status", "-o", "json").stdout)}
    assert status["keystone"]["drifted"] is False and status["glance"]["drifted"] is True


def test_mode_off_checks_nothing(env: Env) -> None:
    env.set_drift({"mode": "off"})
    env.apply()
    env.kubectl("delete", "configmap", "keystone-conf")
    assert env.drift() == {"keystone": [], "glance": []}


def test_one_list_per_kind_and_namespace(env: Env) -> None:
    env.apply()
    pipe = env.pipeline()
    env.sandbox.reset_stats()
    report = pipe.drift(GitSource(str(env.root)), "dev", "HEAD")
    # 8 objects of 4 kinds in one namespace: 4 lists, plus the one list of helm's release records.
    assert report.requests == 4
    assert env.sandbox.stats()["requests"] == 5
    assert not report.drifted
