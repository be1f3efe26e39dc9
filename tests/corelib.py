"""Builders for the core-loop tests: real git repos of the values layout, with small real charts."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from deploy_manager.helm.runner import HelmRunner
from deploy_manager.kube.client import KubeClient
from deploy_manager.models.desired import ChartSpec, DesiredComponent
from deploy_manager.pipeline import Pipeline
from deploy_manager.source.git import GitSource
from deploy_manager.store.sqlite import RunStore

CONFIGMAP_TEMPLATE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-conf
  labels:
    app.kubernetes.io/instance: {{ .Release.Name }}
data:
  values.json: {{ toJson .Values | quote }}
"""


def api_deployment(*, annotations: str = "", container: str = "") -> str:
    """The `<release>-api` Deployment (one replica, one `api` container) as a template document starting with
    `---`; `annotations` and `container` are extra lines, already indented, for the pod template's metadata and
    for the container."""
    return f"""\
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{{{ .Release.Name }}}}-api
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {{{{ .Release.Name }}}}-api}}
  template:
    metadata:
      labels: {{app: {{{{ .Release.Name }}}}-api}}
{annotations}    spec:
      containers:
        - name: api
          image: registry.example/keystone:2025.1
{container}"""


# A Deployment whose pod template follows the values: a values change is a rollout, which the sandbox makes
# ready after its readiness delay (so runs can be made to last).
DEPLOYMENT_TEMPLATE = api_deployment(
    annotations="      annotations: {values-hash: {{ toJson .Values | sha256sum | quote }}}\n"
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_chart(
    root: Path,
    path: str,
    *,
    name: str | None = None,
    version: str = "0.1.0",
    template: str = CONFIGMAP_TEMPLATE,
    extra: dict[str, Any] | None = None,
) -> Path:
    """A minimal real chart that renders one ConfigMap holding its values."""
    chart = root / path
    meta: dict[str, Any] = {"apiVersion": "v2", "name": name or Path(path).name, "version": version}
    meta.update(extra or {})
    write(chart / "Chart.yaml", yaml.safe_dump(meta))
    write(chart / "values.yaml", "{}\n")
    write(chart / "templates" / "configmap.yaml", template)
    return chart


def write_cluster(root: Path, cluster: str, spec: dict[str, Any]) -> Path:
    return write(root / "values" / cluster / "cluster.yaml", yaml.safe_dump(spec, sort_keys=False))


def write_values(root: Path, layer: str, component: str, values: dict[str, Any]) -> Path:
    return write(root / "values" / layer / f"{component}.yaml", yaml.safe_dump(values, sort_keys=False))


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout.strip()


def init_repo(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "test@example.invalid")
    git(root, "config", "user.name", "test")
    return root


def commit(root: Path, message: str = "change") -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "--allow-empty", "-m", message)
    return git(root, "rev-parse", "HEAD")


def readme_repo(root: Path) -> Path:
    """A repo whose one commit holds only a README ("v0"): for the tests of triggers and the queue."""
    init_repo(root)
    write(root / "README", "v0\n")
    commit(root, "initial")
    return root


def simple_cluster(root: Path, cluster: str = "dev", *, namespace: str = "openstack") -> dict[str, Any]:
    """Six components in four waves: rabbitmq, memcached -> keystone -> glance, placement -> nova."""
    needs = {
        "rabbitmq": [],
        "memcached": [],
        "keystone": ["rabbitmq", "memcached"],
        "glance": ["keystone"],
        "placement": ["keystone"],
        "nova": ["glance", "placement"],
    }
    components: dict[str, Any] = {}
    for name, deps in needs.items():
        write_chart(root, f"charts/openstack/{name}")
        components[name] = {"chart": f"charts/openstack/{name}"} | ({"needs": deps} if deps else {})
        write_values(root, cluster, name, {"replicas": 1, "conf": {name: {"debug": False}}})
    spec = {"namespace": namespace, "components": components}
    write_cluster(root, cluster, spec)
    return spec


def simple_repo(root: Path) -> Path:
    """A repo whose one commit ("init") holds simple_cluster's `dev`."""
    init_repo(root)
    simple_cluster(root)
    commit(root, "init")
    return root


def sandbox_pipeline(helm_bin: str, kubeconfig: Path, state: Path) -> Pipeline:
    """The pipeline a test drives against the sandbox: real helm and kubectl, its records and chart cache in `state`."""
    return Pipeline(
        helm=HelmRunner(helm_bin, kubeconfig=kubeconfig),
        kube=KubeClient(kubeconfig=kubeconfig),
        store=RunStore.in_dir(state),
        cache_dir=state / "charts",
    )


def apply_succeeded(pipeline: Pipeline, root: Path, cluster: str = "dev") -> Any:
    """Apply HEAD of the repo at `root`; the run must succeed (its record is the failure message)."""
    run = pipeline.apply(GitSource(str(root)), cluster, "HEAD", trigger="test")
    assert run.status.value == "succeeded", run.to_dict()
    return run


def desired_component(name: str, **fields: Any) -> DesiredComponent:
    """A loaded component for the pure tests: release `name` in namespace `os`, chart `charts/<name>`, no needs, no
    values, a 60 s timeout; `fields` set the others (bootstrap, digest, ...)."""
    return DesiredComponent(
        name=name,
        release=name,
        namespace="os",
        chart=ChartSpec(path=f"charts/{name}"),
        needs=(),
        timeout=60,
        values={},
        values_files=(),
        **fields,
    )
