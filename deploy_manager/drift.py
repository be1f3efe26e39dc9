"""Drift check of a cluster: observe the live objects of each release's manifest, compare (planner/drift.py).

Cost: the release records come from the one list the snapshot already makes (`observe`), and the live objects
from ONE list per (apiVersion, kind, namespace) that the manifests use (Secrets without helm's own release
records), never one GET per object. Components with `drift.mode: off`, and releases that are not `deployed`
(absent, failed, pending: a run is about to write them anyway), are not checked.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy_manager.kube.client import KubeClient
from deploy_manager.kube.objects import ObjectsApi
from deploy_manager.models.desired import DesiredCluster, DriftPolicy, IgnoreRule
from deploy_manager.models.observed import ObservedRelease, ReleaseId
from deploy_manager.planner.drift import DriftItem, release_drift
from deploy_manager.planner.manifest_diff import ObjectKey, object_key, parse_manifest


@dataclass(frozen=True)
class ComponentDrift:
    component: str
    release: str
    namespace: str
    mode: str
    items: tuple[DriftItem, ...] = ()
    revision: int | None = None  # the release revision whose manifest was compared

    @property
    def drifted(self) -> bool:
        return bool(self.items)

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "release": self.release,
            "namespace": self.namespace,
            "mode": self.mode,
            "revision": self.revision,
            "drifted": self.drifted,
            "drift": [i.to_dict() for i in self.items],
        }


@dataclass(frozen=True)
class DriftReport:
    cluster: str
    components: dict[str, ComponentDrift] = field(default_factory=dict)
    requests: int = 0  # API requests the check made (release records not included: the caller's snapshot)
    seconds: float = 0.0
    checked_at: str = ""

    @property
    def drifted(self) -> bool:
        return any(c.drifted for c in self.components.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "drifted": self.drifted,
            "checked_at": self.checked_at,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "components": [c.to_dict() for c in self.components.values()],
        }


@dataclass(frozen=True)
class Target:
    """One release to check and the component's drift policy."""

    component: str
    release: str
    namespace: str
    policy: DriftPolicy = field(default_factory=DriftPolicy)


def targets_of(desired: DesiredCluster) -> list[Target]:
    return [Target(n, c.release, c.namespace, c.drift) for n, c in desired.components.items()]


def targets_of_releases(releases: Iterable[ObservedRelease], policies: Mapping[str, DriftPolicy]) -> list[Target]:
    """Targets from the release records alone (our `component` label), with the policies last recorded."""
    out: list[Target] = []
    for r in releases:
        component = r.labels.get("component", r.name)
        out.append(Target(component, r.name, r.namespace, policies.get(component, DriftPolicy())))
    return out


def check_drift(
    kube: KubeClient,
    cluster: str,
    targets: Iterable[Target],
    observed: Mapping[ReleaseId, ObservedRelease],
    *,
    objects: ObjectsApi | None = None,
) -> DriftReport:
    """Drift of each target's deployed release: one list per (apiVersion, kind, namespace) its manifests use."""
    t0 = time.monotonic()
    api = objects or ObjectsApi(kube)
    targets = list(targets)
    checked: dict[str, tuple[ObservedRelease, dict[ObjectKey, dict[str, Any]]]] = {}
    groups: set[tuple[str, str, str]] = set()  # (apiVersion, kind, namespace)
    for t in targets:
        obs = observed.get(ReleaseId(t.namespace, t.release))
        if t.policy.mode == "off" or obs is None or obs.status != "deployed":
            continue
        manifest = parse_manifest(obs.manifest, t.namespace)  # parsed once per release
        checked[t.component] = (obs, manifest)
        for key, obj in manifest.items():
            groups.add((str(obj.get("apiVersion", "")), key.kind, key.namespace))
    live: dict[ObjectKey, dict[str, Any]] = {}
    before = api.requests
    for api_version, kind, namespace in sorted(groups):
        for item in api.list(api_version, kind, namespace):
            item.setdefault("kind", kind)  # list items carry no kind
            found = object_key(item, namespace)
            if found is not None:
                live[found] = item
    out: dict[str, ComponentDrift] = {}
    for t in targets:
        seen = checked.get(t.component)
        items = release_drift(seen[1], t.namespace, live, t.policy) if seen is not None else []
        revision = seen[0].revision if seen is not None else None
        out[t.component] = ComponentDrift(t.component, t.release, t.namespace, t.policy.mode, tuple(items), revision)
    return DriftReport(
        cluster,
        out,
        requests=api.requests - before,
        seconds=time.monotonic() - t0,
        checked_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )


# -- the policies last seen, for readers without the repo (`status`) --------------------------------------
def policies_file(state_dir: Path, cluster: str) -> Path:
    return state_dir / "drift" / f"{cluster}.json"


def save_policies(state_dir: Path, desired: DesiredCluster) -> None:
    """Record each component's drift policy (no values, no secrets), so `status` applies the same ignores."""
    data = {
        name: {
            "mode": c.drift.mode,
            "ignore": [
                {"kind": r.kind, "name": r.name, "namespace": r.namespace, "paths": list(r.paths)}
                for r in c.drift.ignore
            ],
        }
        for name, c in desired.components.items()
    }
    path = policies_file(state_dir, desired.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, path)


def load_policies(state_dir: Path, cluster: str) -> dict[str, DriftPolicy]:
    """The policies `save_policies` recorded; {} when none were (or the file is unreadable)."""
    try:
        data = json.loads(policies_file(state_dir, cluster).read_text())
        return {
            str(name): DriftPolicy(
                mode=str(p.get("mode", "detect")),
                ignore=tuple(
                    IgnoreRule(str(r["kind"]), str(r["name"]), r.get("namespace"), tuple(r.get("paths") or ()))
                    for r in p.get("ignore") or []
                ),
            )
            for name, p in data.items()
        }
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}
