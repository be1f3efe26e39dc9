"""Test helper: the example clusters as the deploy manager sees them, and their real helm renders.

Loads the clusters with the real loader (`deploy_manager.desired`, from a git repo built from this
checkout), renders charts with the real helm binary, and caches renders per process so every test
module shares one set.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from deploy_manager.desired import load_cluster
from deploy_manager.desired.values import deep_merge
from deploy_manager.source.git import GitSource

__all__ = ["deep_merge"]  # re-exported: tests derive changed values with the loader's own merge

ROOT = Path(__file__).resolve().parents[2]
VALUES = ROOT / "values"
HELM = Path(os.environ.get("DM_HELM_BIN", ROOT / ".tools" / "bin" / "helm"))
# The example clusters: every directory of values/ with a cluster.yaml (`_common` holds shared layers).
CLUSTERS = tuple(sorted(p.parent.name for p in VALUES.glob("*/cluster.yaml")))


def load_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text())
    assert data is None or isinstance(data, dict), f"{path}: the top level must be a mapping"
    return data or {}


@dataclass(frozen=True)
class Component:
    cluster: str
    name: str
    chart: Path
    release: str
    namespace: str
    needs: tuple[str, ...]
    bootstrap: tuple[dict[str, Any], ...]
    values: dict[str, Any] = field(hash=False, compare=False)


def build_values_repo(root: Path) -> Path:
    """A git repo of this checkout's values/, charts/openstack/ and bootstrap/, committed on `main`
    (the repo `make demo` builds)."""
    for part in ("values", "charts/openstack", "bootstrap"):
        shutil.copytree(ROOT / part, root / part, symlinks=True)
    git(root, "init", "-q", "-b", "main")
    commit_all(root, "values")
    return root


def git(root: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True)
    return result.stdout.strip()


def commit_all(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


@cache
def values_repo() -> tuple[GitSource, str]:
    """The clusters load through the real loader from a committed copy, exactly as the service reads them."""
    root = Path(tempfile.mkdtemp(prefix="dm-charts-repo-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    build_values_repo(root)
    source = GitSource(str(root))
    return source, source.resolve("main")


@cache
def cluster_file(cluster: str) -> dict[str, Any]:
    return load_yaml(VALUES / cluster / "cluster.yaml")


@cache
def components(cluster: str) -> tuple[Component, ...]:
    """The cluster as `deploy_manager.desired.load_cluster` sees it (schema-validated, layers merged,
    every bootstrap script rendered with StrictUndefined)."""
    source, commit = values_repo()
    desired = load_cluster(source, commit, cluster)
    return tuple(
        Component(
            cluster=cluster,
            name=comp.name,
            chart=ROOT / str(comp.chart.path),
            release=comp.release,
            namespace=comp.namespace,
            needs=comp.needs,
            bootstrap=tuple(asdict(step) for step in comp.bootstrap),
            values=comp.values,
        )
        for comp in desired.components.values()
    )


def all_components() -> Iterator[Component]:
    for cluster in CLUSTERS:
        yield from components(cluster)


def helm(*args: str, values: Mapping[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    """Run helm with the values written to a temp file (as the deploy manager passes them).

    The file is JSON (valid YAML): PyYAML writes the string "y" unquoted and Helm's YAML 1.1 parser
    reads it back as `true`; JSON has no such ambiguity.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".json") as handle:
        extra: list[str] = []
        if values is not None:
            json.dump(values, handle, sort_keys=True)
            handle.flush()
            extra = ["-f", handle.name]
        return subprocess.run([str(HELM), *args, *extra], capture_output=True, text=True, timeout=120)


def template(comp: Component, values: Mapping[str, Any] | None = None) -> str:
    """`helm template` of one component; raises with helm's message when the chart fails to render."""
    result = helm(
        "template", comp.release, str(comp.chart), "--namespace", comp.namespace,
        values=comp.values if values is None else values,
    )
    if result.returncode != 0:
        raise AssertionError(f"{comp.cluster}/{comp.name}: helm template failed:\n{result.stderr}")
    return result.stdout


def objects(manifest: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(manifest) if doc]


@cache
def renders() -> dict[tuple[str, str], str]:
    """Every example cluster's every component, rendered once per test session (2 helm processes at a time)."""
    comps = list(all_components())
    with ThreadPoolExecutor(max_workers=4) as pool:
        outputs = list(pool.map(template, comps))
    return {(c.cluster, c.name): out for c, out in zip(comps, outputs, strict=True)}
