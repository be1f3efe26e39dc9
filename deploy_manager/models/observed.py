"""What is deployed: the newest Helm release record of each release, decoded once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, order=True)
class ReleaseId:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ObservedRelease:
    namespace: str
    name: str
    revision: int
    status: str  # deployed | failed | pending-install | pending-upgrade | pending-rollback | superseded | …
    chart_name: str = ""
    chart_version: str = ""
    description: str = ""
    # Values the user supplied (Helm's `config`), as stored in the release.
    config: dict[str, Any] = field(default_factory=dict)
    # Our own release labels (`deploy-manager.io/*`), without the prefix: digest, commit, chart, values, …
    labels: dict[str, str] = field(default_factory=dict)
    updated: str = ""

    @property
    def id(self) -> ReleaseId:
        return ReleaseId(self.namespace, self.name)

    @property
    def digest(self) -> str | None:
        return self.labels.get("digest")

    @property
    def commit(self) -> str | None:
        return self.labels.get("commit")
