"""The values repo the bootstrap tests deploy: the project's own demo cluster, plus glance and nova.

The real `charts/openstack/`, `values/` and `bootstrap/` of this checkout are copied into a fresh git
repo. Components the demo cluster does not declare yet (glance, nova) are added with small charts of
the same conventions (a `<release>-etc` Secret, a Deployment with a `checksum/config` annotation,
images under `images.tags`) and their own bootstrap scripts, unless the checkout already has them.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from tests.corelib import commit, init_repo, write

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = "demo"

CHART_ETC = """\
apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-etc
type: Opaque
data:
  {{ .Chart.Name }}.conf: {{ toJson .Values.conf | b64enc }}
"""

CHART_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-api
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {{ .Release.Name }}-api
  template:
    metadata:
      labels:
        app: {{ .Release.Name }}-api
      annotations:
        checksum/config: {{ toJson .Values.conf | sha256sum }}
    spec:
      containers:
        - name: api
          image: {{ .Values.images.tags.api }}
          volumeMounts:
            - name: etc
              mountPath: /etc/{{ .Chart.Name }}
      volumes:
        - name: etc
          secret:
            secretName: {{ .Release.Name }}-etc
"""

SCRIPT = """\
#!/bin/bash
set -euo pipefail
# {{ component }} {step} in {{ namespace }} with {{ values.images.tags[IMAGE] }}
{command} --config-file /etc/{{ component }}/{{ component }}.conf
"""

# component -> (needs, image tag, steps: (name, when, image key, command))
EXTRA: dict[str, tuple[list[str], str, list[tuple[str, str, str, str]]]] = {
    "glance": (
        ["keystone"],
        "quay.io/airshipit/glance:2024.1-ubuntu_jammy",
        [("db-sync", "before", "glance_db_sync", "glance-manage db_sync")],
    ),
    "nova": (
        ["keystone", "glance"],
        "quay.io/airshipit/nova:2024.1-ubuntu_jammy",
        [
            ("api-db-sync", "before", "nova_db_sync", "nova-manage api_db sync"),
            ("map-cell0", "before", "nova_db_sync", "nova-manage cell_v2 map_cell0"),
            ("db-sync", "before", "nova_db_sync", "nova-manage db sync"),
            ("discover-hosts", "after", "nova_db_sync", "nova-manage cell_v2 discover_hosts --verbose"),
        ],
    ),
}


def build_repo(dest: Path, *, namespace: str | None = None) -> Path:
    """A git repo with the demo cluster (in `namespace` if given) plus glance and nova; returns its path."""
    repo = init_repo(dest)
    for part in ("charts", "values", "bootstrap"):
        shutil.copytree(ROOT / part, repo / part)
    spec = read_cluster(repo)
    if namespace is not None:
        spec["namespace"] = namespace
    for name, (needs, image, steps) in EXTRA.items():
        if name in spec["components"]:
            continue
        chart = repo / "charts" / "openstack" / name
        if not chart.exists():
            write(chart / "Chart.yaml", yaml.safe_dump({"apiVersion": "v2", "name": name, "version": "0.1.0"}))
            write(chart / "values.yaml", "images:\n  tags: {}\nconf: {}\n")
            write(chart / "templates" / "secret-etc.yaml", CHART_ETC)
            write(chart / "templates" / "deployment.yaml", CHART_DEPLOYMENT)
        tags = {"api": image} | {key: image for _, _, key, _ in steps}
        conf = {name: {"DEFAULT": {"debug": False}, "database": {"max_retries": -1}}}
        write(repo / "values" / CLUSTER / f"{name}.yaml", yaml.safe_dump({"images": {"tags": tags}, "conf": conf}))
        for step, _, key, command in steps:
            text = SCRIPT.replace("{step}", step).replace("{command}", command).replace("IMAGE", repr(key))
            write(repo / "bootstrap" / name / f"{step}.sh.j2", text)
        spec["components"][name] = {
            "chart": f"charts/openstack/{name}",
            "needs": needs,
            "bootstrap": [
                {"name": step, "when": when, "image": key, "inputs": [f"conf.{name}.database"]}
                for step, when, key, _ in steps
            ],
        }
    write_cluster(repo, spec)
    commit(repo, "the demo cluster")
    return repo


def read_cluster(repo: Path) -> dict[str, Any]:
    data = yaml.safe_load((repo / "values" / CLUSTER / "cluster.yaml").read_text())
    assert isinstance(data, dict)
    return data


def write_cluster(repo: Path, spec: dict[str, Any]) -> None:
    write(repo / "values" / CLUSTER / "cluster.yaml", yaml.safe_dump(spec, sort_keys=False))


def edit_values(repo: Path, component: str, edit: Any) -> str:
    """Apply `edit(values)` to values/demo/<component>.yaml and commit; returns the commit sha."""
    path = repo / "values" / CLUSTER / f"{component}.yaml"
    values = yaml.safe_load(path.read_text()) or {}
    edit(values)
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return commit(repo, f"edit {component}")


def declared_steps(repo: Path) -> dict[str, list[tuple[str, str]]]:
    """component -> [(step, when)] in declared order."""
    out: dict[str, list[tuple[str, str]]] = {}
    for name, comp in read_cluster(repo)["components"].items():
        out[name] = [(s["name"], s.get("when", "before")) for s in comp.get("bootstrap") or []]
    return out
