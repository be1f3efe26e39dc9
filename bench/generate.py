"""Generate a synthetic values repository: N clusters x 12 OpenStack-shaped components.

Charts share a library chart through a `file://` dependency (like charts/openstack/common), render a
ConfigMap, a Secret, a Service and a Deployment, and are deterministic. Values come in two layers
(`values/_common/<component>.yaml`, `values/<cluster>/<component>.yaml`).

    python -m bench.generate OUT_DIR [--clusters 60]
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import yaml

# 12 components, critical path of 5: mariadb -> keystone -> placement -> nova -> horizon.
NEEDS: dict[str, list[str]] = {
    "mariadb": [],
    "rabbitmq": [],
    "memcached": [],
    "keystone": ["mariadb", "rabbitmq", "memcached"],
    "glance": ["keystone"],
    "placement": ["keystone"],
    "neutron": ["keystone"],
    "cinder": ["keystone"],
    "barbican": ["keystone"],
    "nova": ["glance", "placement", "neutron"],
    "heat": ["keystone", "nova"],
    "horizon": ["keystone", "nova"],
}

LIBRARY = """\
{{- define "common.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
"""

TEMPLATES = {
    "configmap.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-conf
  labels: {{- include "common.labels" . | nindent 4 }}
data:
  {{ .Chart.Name }}.conf: |
    {{- range $section, $opts := .Values.conf }}
    [{{ $section }}]
    {{- range $k, $v := $opts }}
    {{ $k }} = {{ $v }}
    {{- end }}
    {{- end }}
""",
    "secret.yaml": """\
apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-etc
  labels: {{- include "common.labels" . | nindent 4 }}
stringData:
  db-password: {{ .Values.db.password | quote }}
""",
    "service.yaml": """\
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}
  labels: {{- include "common.labels" . | nindent 4 }}
spec:
  selector: {{- include "common.labels" . | nindent 4 }}
  ports:
    - port: {{ .Values.port }}
""",
    "deployment.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  labels: {{- include "common.labels" . | nindent 4 }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {{- include "common.labels" . | nindent 6 }}
  template:
    metadata:
      labels: {{- include "common.labels" . | nindent 8 }}
    spec:
      containers:
        - name: {{ .Chart.Name }}
          image: {{ index .Values.images.tags .Chart.Name | quote }}
          ports:
            - containerPort: {{ .Values.port }}
""",
}


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout.strip()


def cluster_name(i: int) -> str:
    return f"c{i:02d}"


def generate(root: Path, clusters: int = 60) -> str:
    """Write the repo at `root` (a new git repository) and return the commit sha."""
    root.mkdir(parents=True, exist_ok=True)
    _git(root, "init", "-q", "-b", "main")
    _git(root, "config", "user.email", "bench@example.invalid")
    _git(root, "config", "user.name", "bench")
    common = root / "charts/openstack/common"
    _write(common / "Chart.yaml", "apiVersion: v2\nname: common\nversion: 0.1.0\ntype: library\n")
    _write(common / "templates/_labels.tpl", LIBRARY)
    for i, name in enumerate(NEEDS):
        chart = root / "charts/openstack" / name
        meta = {
            "apiVersion": "v2",
            "name": name,
            "version": "0.1.0",
            "dependencies": [{"name": "common", "version": "0.1.0", "repository": "file://../common"}],
        }
        _write(chart / "Chart.yaml", yaml.safe_dump(meta, sort_keys=False))
        _write(chart / "values.yaml", "replicas: 1\nport: 8080\n")
        for fname, text in TEMPLATES.items():
            _write(chart / "templates" / fname, text)
        common_values = {
            "images": {"tags": {name: f"registry.example/openstack/{name}:2025.1"}},
            "port": 8000 + i,
            "conf": {"DEFAULT": {"debug": False, "log_dir": f"/var/log/{name}"}, "database": {"max_pool_size": 5}},
            "db": {"password": "change-me"},
        }
        _write(root / "values/_common" / f"{name}.yaml", yaml.safe_dump(common_values, sort_keys=False))
    for c in range(clusters):
        cname = cluster_name(c)
        components = {
            n: {"chart": f"charts/openstack/{n}", **({"needs": deps} if deps else {}), "timeout": 120}
            for n, deps in NEEDS.items()
        }
        _write(
            root / "values" / cname / "cluster.yaml",
            yaml.safe_dump({"namespace": cname, "components": components}, sort_keys=False),
        )
        for n in NEEDS:
            values = {
                "replicas": 1,
                "conf": {"DEFAULT": {"region": f"region-{cname}"}},
                "db": {"password": f"pw-{cname}-{n}"},
            }
            _write(root / "values" / cname / f"{n}.yaml", yaml.safe_dump(values, sort_keys=False))
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", f"synthetic: {clusters} clusters x {len(NEEDS)} components")
    return _git(root, "rev-parse", "HEAD")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--clusters", type=int, default=60)
    args = parser.parse_args()
    print(generate(args.out, args.clusters))


if __name__ == "__main__":
    main()
