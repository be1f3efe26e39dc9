"""What a commit asks for: the cluster's components with merged values and digests."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from deploy_manager.models.smoke import SmokeCheck


@dataclass(frozen=True)
class ChartSpec:
    """A chart in the repo (`path`) or in a chart repository/OCI registry (`ref` + `version`)."""

    path: str | None = None
    ref: str | None = None
    repo: str | None = None
    version: str | None = None
    # Content digest: the git tree ids for a chart in the repo, else ref+version.
    digest: str = ""
    # Chart.yaml name/version at the commit (in-repo charts) or the requested version (remote).
    name: str = ""
    chart_version: str = ""

    @property
    def local(self) -> bool:
        return self.path is not None

    def describe(self) -> str:
        if self.path is not None:
            return self.path
        return f"{self.ref}@{self.version}" if self.version else str(self.ref)


@dataclass(frozen=True)
class BootstrapStep:
    """One bootstrap step as declared in cluster.yaml (executed by deploy_manager.bootstrap)."""

    name: str
    script: str
    when: str = "before"
    image: str | None = None
    inputs: tuple[str, ...] = ()
    always: bool = False
    timeout: int = 600
    # sha256 over the step's script source, resolved image and the values at `inputs`.
    digest: str = ""
    # The script rendered with the component's values (what the bootstrap Job runs).
    rendered: str = field(default="", repr=False, compare=False)


@dataclass(frozen=True)
class Remediation:
    """What to do after a failed install/upgrade: `retries` more attempts in the same run, then `on_failure`
    (rollback | uninstall | none; None: rollback for an upgrade, uninstall for a failed first install)."""

    retries: int = 0
    on_failure: str | None = None


@dataclass(frozen=True)
class IgnoreRule:
    """`drift.ignore` entry: `kind` and `name` (shell patterns allowed), `namespace` (None: any), `paths`
    (empty: the whole object, a missing one included; else these fields and everything under them)."""

    kind: str
    name: str
    namespace: str | None = None
    paths: tuple[str, ...] = ()

    def matches(self, kind: str, namespace: str, name: str) -> bool:
        return (
            fnmatch.fnmatchcase(kind, self.kind)
            and fnmatch.fnmatchcase(name, self.name)
            and (self.namespace is None or fnmatch.fnmatchcase(namespace, self.namespace))
        )

    def covers(self, path: str) -> bool:
        return not self.paths or any(_under(path, p) for p in self.paths)


@dataclass(frozen=True)
class DriftPolicy:
    mode: str = "detect"  # detect | correct | off
    ignore: tuple[IgnoreRule, ...] = ()


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith((prefix + ".", prefix + "["))


@dataclass(frozen=True)
class DesiredComponent:
    name: str
    release: str
    namespace: str
    chart: ChartSpec
    needs: tuple[str, ...]
    timeout: int
    values: dict[str, Any]
    values_files: tuple[str, ...]
    bootstrap: tuple[BootstrapStep, ...] = ()
    # Value paths (dotted) whose values must never be printed, besides secret-looking key names.
    secret_paths: tuple[str, ...] = ()
    digest: str = ""
    values_digest: str = ""
    bootstrap_digest: str = ""
    remediation: Remediation = field(default_factory=Remediation)
    # `suspend: true` in cluster.yaml (not part of the digest: suspending changes nothing that is deployed).
    suspended: bool = False
    drift: DriftPolicy = field(default_factory=DriftPolicy)
    # `allowReleaseChange: "FROM->TO"` (issue 17): the one OpenStack release change the release guard lets
    # through although it is a downgrade or a skip (not part of the digest: it changes nothing deployed).
    allow_release_change: str | None = None


@dataclass(frozen=True)
class DesiredCluster:
    name: str
    commit: str
    namespace: str
    components: dict[str, DesiredComponent] = field(default_factory=dict)
    suspended: bool = False  # `suspend: true` at the cluster level of cluster.yaml
    prune: bool = False  # `prune: true`: uninstall the releases of removed components
    # Workflow checks (issue 14): values/_common/smoke.yaml + values/<cluster>/smoke.yaml, rendered.
    smoke: tuple[SmokeCheck, ...] = ()

    @property
    def namespaces(self) -> list[str]:
        return sorted({c.namespace for c in self.components.values()} | {self.namespace})
