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
    # The newest older revision that was deployed (status deployed or superseded); None: it never deployed.
    last_deployed: int | None = None
    # Our labels on this revision equal the previous revision's: helm merges release labels, so a person's
    # own `helm upgrade` carries them too, and this revision cannot be told apart from theirs.
    inherited_labels: bool = False
    # The manifest helm applied for this revision (what `helm get manifest` prints): plan --diff and drift read it.
    manifest: str = field(default="", repr=False, compare=False)

    @property
    def ours(self) -> bool:
        """Provably written by deploy-manager: it carries our labels, and not merely those of the revision before."""
        return "digest" in self.labels and not self.inherited_labels

    @property
    def id(self) -> ReleaseId:
        return ReleaseId(self.namespace, self.name)

    @property
    def digest(self) -> str | None:
        return self.labels.get("digest")

    @property
    def commit(self) -> str | None:
        return self.labels.get("commit")
