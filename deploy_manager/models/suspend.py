"""Suspensions (issue 13): a component, or the whole cluster, frozen during an incident. Types only, no I/O.

A suspension set by `deploy-manager suspend` or `POST /suspend` lives in the cluster, in the ConfigMap
`deploy-manager-<cluster>-suspend` next to the cluster's Lease (`deploy_manager.kube.suspend`), so it survives
the loss of our database and every replica sees it. Its `data` holds one JSON entry per suspension:
`cluster` for the whole cluster, `component.<name>` for one component, each `{"by", "reason", "at"}`.
`suspend: true` in cluster.yaml is a suspension too (`source` `cluster.yaml`); it is read from the commit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

CLUSTER_KEY = "cluster"
COMPONENT_PREFIX = "component."
SOURCE_CLUSTER_YAML = "cluster.yaml"

MSG_SUSPENDED = "suspended by {by}{at}{reason}"


@dataclass(frozen=True)
class Suspension:
    component: str | None  # None: the whole cluster
    by: str = ""  # who: a user@host (CLI), `api` (POST /suspend), `cluster.yaml`
    reason: str = ""
    at: str = ""  # when, ISO 8601 UTC
    source: str = ""  # cli | api | cluster.yaml

    def describe(self) -> str:
        """One line for a plan reason, the status page and `status`: who, when, why."""
        what = "cluster" if self.component is None else f"component {self.component}"
        if self.source == SOURCE_CLUSTER_YAML:
            return f"{what} suspended in cluster.yaml (suspend: true)"
        return f"{what} " + MSG_SUSPENDED.format(
            by=self.by or "unknown",
            at=f" at {self.at}" if self.at else "",
            reason=f": {self.reason}" if self.reason else "",
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "by": self.by,
            "reason": self.reason,
            "at": self.at,
            "source": self.source,
            "message": self.describe(),
        }

    def entry(self) -> str:
        """The ConfigMap entry (JSON, keys sorted so a rewrite of the same suspension is byte-identical)."""
        return json.dumps({"by": self.by, "reason": self.reason, "at": self.at, "source": self.source}, sort_keys=True)


def key_for(component: str | None) -> str:
    return CLUSTER_KEY if component is None else COMPONENT_PREFIX + component


def _from_entry(key: str, text: str) -> Suspension | None:
    if key == CLUSTER_KEY:
        component = None
    elif key.startswith(COMPONENT_PREFIX) and len(key) > len(COMPONENT_PREFIX):
        component = key[len(COMPONENT_PREFIX) :]
    else:
        return None  # not ours (someone's note): ignored
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        # Fail closed: an entry someone edited into garbage still freezes what its key names.
        return Suspension(component, by="unknown", reason="unreadable entry in the suspend ConfigMap")
    return Suspension(
        component,
        by=str(data.get("by") or ""),
        reason=str(data.get("reason") or ""),
        at=str(data.get("at") or ""),
        source=str(data.get("source") or ""),
    )


@dataclass(frozen=True)
class Suspensions:
    """Every suspension of one cluster that the ConfigMap holds."""

    cluster: Suspension | None = None
    components: Mapping[str, Suspension] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.cluster is not None or bool(self.components)

    def for_component(self, name: str) -> Suspension | None:
        """The component's own suspension, else the cluster's."""
        return self.components.get(name) or self.cluster

    def all(self) -> list[Suspension]:
        return ([self.cluster] if self.cluster else []) + [self.components[n] for n in sorted(self.components)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster.to_dict() if self.cluster else None,
            "components": {n: self.components[n].to_dict() for n in sorted(self.components)},
        }

    def with_suspension(self, suspension: Suspension) -> Suspensions:
        if suspension.component is None:
            return replace(self, cluster=suspension)
        return replace(self, components={**self.components, suspension.component: suspension})

    def without(self, component: str | None) -> Suspensions:
        if component is None:
            return replace(self, cluster=None)
        return replace(self, components={n: s for n, s in self.components.items() if n != component})

    def get(self, component: str | None) -> Suspension | None:
        return self.cluster if component is None else self.components.get(component)

    def data(self) -> dict[str, str]:
        """The ConfigMap's `data`."""
        return {key_for(s.component): s.entry() for s in self.all()}

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | None) -> Suspensions:
        cluster: Suspension | None = None
        components: dict[str, Suspension] = {}
        for key, text in (data or {}).items():
            found = _from_entry(str(key), str(text))
            if found is None:
                continue
            if found.component is None:
                cluster = found
            else:
                components[found.component] = found
        return cls(cluster=cluster, components=components)
