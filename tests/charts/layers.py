"""Test helper: the example clusters as the deploy manager sees them, and their real helm renders.

Merges the values layers the way docs/design.md fixes them (`values/_common/<component>.yaml`, then
`values/<cluster>/<component>.yaml`; maps merge deeply, lists and scalars replace), renders charts
with the real helm binary, and caches renders per process so every test module shares one set.
Once `deploy_manager.desired` lands this loader can be swapped for it.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
VALUES = ROOT / "values"
HELM = Path(os.environ.get("DM_HELM_BIN", ROOT / ".tools" / "bin" / "helm"))
# The example clusters: every directory of values/ with a cluster.yaml (`_common` holds shared layers).
CLUSTERS = tuple(sorted(p.parent.name for p in VALUES.glob("*/cluster.yaml")))


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Later layer wins; maps merge key by key, anything else (lists included) replaces."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


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


@cache
def cluster_file(cluster: str) -> dict[str, Any]:
    return load_yaml(VALUES / cluster / "cluster.yaml")


def merged_values(cluster: str, component: str) -> dict[str, Any]:
    shared = load_yaml(VALUES / "_common" / f"{component}.yaml")
    return deep_merge(shared, load_yaml(VALUES / cluster / f"{component}.yaml"))


@cache
def components(cluster: str) -> tuple[Component, ...]:
    spec = cluster_file(cluster)
    out = []
    for name, comp in spec["components"].items():
        out.append(
            Component(
                cluster=cluster,
                name=name,
                chart=ROOT / comp["chart"],
                release=comp.get("release", name),
                namespace=comp.get("namespace", spec["namespace"]),
                needs=tuple(comp.get("needs", ())),
                bootstrap=tuple(comp.get("bootstrap", ())),
                values=merged_values(cluster, name),
            )
        )
    return tuple(out)


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
