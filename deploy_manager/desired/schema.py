"""The cluster.yaml model (pydantic) and its published JSON schema.

`python -m deploy_manager.desired.schema` rewrites `deploy_manager/schemas/cluster.schema.json`;
a test fails when the published file is out of date.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from deploy_manager.planner.release_guard import ALLOW_PATTERN

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "cluster.schema.json"

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DURATION = re.compile(r"^(\d+)(s|m|h)?$")

DnsLabel = Annotated[str, Field(pattern=_DNS_LABEL, max_length=63)]
# Helm release names are DNS-1123 labels of at most 53 characters.
ReleaseName = Annotated[str, Field(pattern=_DNS_LABEL, max_length=53)]


def _seconds(value: object) -> object:
    """Accept 600, "600", "600s", "10m", "1h" and return seconds."""
    if isinstance(value, str):
        m = _DURATION.match(value.strip())
        if not m:
            raise ValueError(f"invalid duration {value!r} (use seconds, or e.g. 90s, 10m, 1h)")
        return int(m.group(1)) * {"s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]
    return value


class BootstrapStepSpec(BaseModel):
    """A bootstrap step (run as a Kubernetes Job by deploy_manager.bootstrap)."""

    model_config = ConfigDict(extra="forbid")

    name: DnsLabel = Field(description="Unique per component.")
    script: str | None = Field(None, description="Default: bootstrap/<component>/<name>.sh.j2")
    when: Literal["before", "after"] = Field("before", description="Before or after the helm upgrade.")
    image: str | None = Field(None, description="Key under `images.tags` in the component's merged values.")
    inputs: list[str] = Field(default_factory=list, description="Value paths whose change re-runs the step.")
    always: bool = Field(False, description="Run on every apply of the component.")
    timeout: int = Field(600, gt=0, description="Seconds (or a duration such as 10m).")

    _timeout = field_validator("timeout", mode="before")(classmethod(lambda cls, v: _seconds(v)))


class RemediationSpec(BaseModel):
    """What to do when an install/upgrade of a component fails (issue 10)."""

    model_config = ConfigDict(extra="forbid")

    retries: int | None = Field(
        None, ge=0, description="Further attempts of a failed install/upgrade in the same run (default 0)."
    )
    on_failure: Literal["rollback", "uninstall", "none"] | None = Field(
        None,
        description="After the last failed attempt: rollback (to the last deployed revision), uninstall, or none. "
        "Default: rollback for an upgrade, uninstall for a failed first install.",
    )


class DriftIgnoreSpec(BaseModel):
    """Live state that is meant to change at run time (e.g. key Secrets written by bootstrap Jobs)."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, description="Object kind, e.g. Secret (shell patterns allowed).")
    name: str = Field(min_length=1, description="Object name (shell patterns allowed).")
    namespace: str | None = Field(None, description="Only in this namespace (default: any).")
    paths: list[str] | None = Field(
        None, description="Only these fields and what is under them, e.g. spec.replicas (default: the whole object)."
    )


class DriftSpec(BaseModel):
    """Drift of live objects against the release's manifest (issue 13)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["detect", "correct", "off"] | None = Field(
        None,
        description="detect (default): report it; correct: also re-apply the release's manifest on the next run; "
        "off: do not check.",
    )
    ignore: list[DriftIgnoreSpec] = Field(
        default_factory=list, description="Objects or fields never reported (a component adds to the cluster's)."
    )


class ComponentSpec(BaseModel):
    """One component: a Helm release of a chart with layered values."""

    model_config = ConfigDict(extra="forbid")

    chart: str = Field(description="A chart path in the repo, a repo chart name (with `repo`), or an oci:// ref.")
    namespace: DnsLabel | None = Field(None, description="Default: the cluster's namespace.")
    release: ReleaseName | None = Field(None, description="Default: the component name.")
    needs: list[str] = Field(default_factory=list, description="Components deployed and ready first.")
    timeout: int = Field(300, gt=0, description="helm --timeout in seconds (or a duration such as 10m).")
    version: str | None = Field(None, description="Chart version, required for a remote chart.")
    repo: str | None = Field(None, description="Chart repository URL for a remote chart.")
    secrets: list[str] = Field(
        default_factory=list, description="Value paths that are secret besides password/token/secret/*key names."
    )
    bootstrap: list[BootstrapStepSpec] = Field(default_factory=list)
    remediation: RemediationSpec | None = Field(None, description="Overrides the cluster's `remediation`, key by key.")
    suspend: bool = Field(
        False, description="Freeze this component: it is planned `suspended` and never written (issue 13)."
    )
    drift: DriftSpec | None = Field(
        None, description="Overrides the cluster's drift `mode`; its `ignore` rules add to the cluster's."
    )
    allowReleaseChange: str | None = Field(  # noqa: N815 - the cluster.yaml key
        None,
        pattern=ALLOW_PATTERN,
        description="`FROM->TO` (e.g. `2025.1->2026.2`): let exactly this OpenStack release change through "
        "although the release guard refuses it (a downgrade, or a skip beyond N+1 / SLURP->SLURP). Remove it "
        "once deployed.",
    )

    _timeout = field_validator("timeout", mode="before")(classmethod(lambda cls, v: _seconds(v)))

    @property
    def remote(self) -> bool:
        return self.repo is not None or self.chart.startswith("oci://")

    @model_validator(mode="after")
    def _check(self) -> ComponentSpec:
        if self.remote and not self.version:
            raise ValueError("a remote chart (repo or oci://) needs `version`")
        if not self.remote and self.version:
            raise ValueError("`version` applies to remote charts only (a chart in the repo has its Chart.yaml)")
        names = [s.name for s in self.bootstrap]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate bootstrap step name(s): {', '.join(dup)}")
        if len(set(self.needs)) != len(self.needs):
            raise ValueError("duplicate entries in needs")
        return self


class ClusterSpec(BaseModel):
    """values/<cluster>/cluster.yaml"""

    model_config = ConfigDict(extra="forbid", title="deploy-manager cluster.yaml")

    namespace: DnsLabel = Field("default", description="Default namespace of the cluster's releases.")
    components: dict[Annotated[str, Field(pattern=_DNS_LABEL, max_length=53)], ComponentSpec] = Field(
        description="Component name -> settings."
    )
    remediation: RemediationSpec | None = Field(None, description="Default remediation of every component.")
    suspend: bool = Field(False, description="Freeze the whole cluster: every component is planned `suspended`.")
    prune: bool = Field(
        False,
        description="Uninstall releases of components removed from this file (they carry our cluster label), "
        "dependents first, after every install/upgrade of the run succeeded; else they are reported `orphaned`.",
    )
    drift: DriftSpec | None = Field(None, description="Default drift settings of every component.")
    require_image_digests: bool = Field(
        False,
        description="Refuse to plan while any component's `images.tags` value floats: every image must be pinned "
        "by digest (`<repo>:<tag>@sha256:<digest>`). The error names the values file, the key and the component.",
    )


def schema_text(model: type[BaseModel]) -> str:
    """The published JSON Schema of a repository file's model (stable text: the schema tests compare it)."""
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_schema(path: Path, text: str) -> int:
    """`python -m` entry point of a schema module: rewrite its published file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    sys.stdout.write(f"wrote {path}\n")
    return 0


def json_schema() -> str:
    return schema_text(ClusterSpec)


def main() -> int:
    return write_schema(SCHEMA_PATH, json_schema())


if __name__ == "__main__":
    raise SystemExit(main())
