"""The values repo the bootstrap tests deploy: the project's own demo cluster.

The real `charts/openstack/`, `values/` and `bootstrap/` of this checkout are copied into a fresh git repo.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from tests.corelib import commit, init_repo

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = "demo"


def build_repo(dest: Path) -> Path:
    """A git repo with the demo cluster; returns its path."""
    repo = init_repo(dest)
    for part in ("charts", "values", "bootstrap"):
        shutil.copytree(ROOT / part, repo / part)
    commit(repo, "the demo cluster")
    return repo


def read_cluster(repo: Path) -> dict[str, Any]:
    data = yaml.safe_load((repo / "values" / CLUSTER / "cluster.yaml").read_text())
    assert isinstance(data, dict)
    return data


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
