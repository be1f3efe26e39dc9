"""Workflow checks declared in the values repo (issue 14): `values/_common/smoke.yaml`, then
`values/<cluster>/smoke.yaml`, validated (pydantic; the schema is published at
`deploy_manager/schemas/smoke.schema.json`) and rendered (the bootstrap scripts' Jinja2 sandbox and context).

```yaml
checks:
  - name: token-issue                 # DNS label, unique
    script: bootstrap/smoke/token-issue.sh.j2   # default: bootstrap/smoke/<name>.sh.j2
    image: openstack_client           # key under images.tags in the component's merged values (the default)
    component: keystone               # the component whose values/config it reads
    gates: [keystone]                 # run right after these components are written; their dependents wait
    timeout: 60                       # seconds; past it the check fails
    sla: 5                            # seconds; a pass slower than this counts as failed (optional)
    schedule: 600                     # also every 600 s between runs (optional)
    on_failure: rollback              # an ungated check's failure rolls back what the run wrote of it (optional)
```

Layers merge like values layers, by check name: a cluster's entry overrides the common entry of the same name
key by key (it may give only the keys it changes: the published schema describes a complete check); new names
are added. A common check whose component (or a gate) the cluster does not deploy is
left out (the common layer serves every cluster); in the cluster's own file that is an error.

`python -m deploy_manager.desired.smoke` rewrites the published schema; a test fails when it is out of date.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from deploy_manager.desired.bootstrap import render_script, resolve_image
from deploy_manager.desired.schema import SCHEMA_PATH, DnsLabel, _seconds, schema_text, write_schema
from deploy_manager.desired.values import deep_merge
from deploy_manager.desired.yamlio import key_lines, line_of, load_yaml, validate_model
from deploy_manager.models.desired import DesiredComponent
from deploy_manager.models.errors import ConfigError
from deploy_manager.models.smoke import SmokeCheck
from deploy_manager.source.git import GitSource

SMOKE_SCHEMA_PATH = SCHEMA_PATH.parent / "smoke.schema.json"
DEFAULT_IMAGE = "openstack_client"
SCRIPT_DIR = "bootstrap/smoke"
MAX_CHECKS = 200


def smoke_files(cluster: str) -> list[str]:
    """The layers, in merge order (later wins); each is optional."""
    return ["values/_common/smoke.yaml", f"values/{cluster}/smoke.yaml"]


class SmokeCheckSpec(BaseModel):
    """One workflow check (run as a Kubernetes Job in its component's namespace)."""

    model_config = ConfigDict(extra="forbid")

    name: DnsLabel = Field(description="Unique in the cluster; the Job is smoke-<name>-<suffix>.")
    script: str | None = Field(None, description="A Jinja2 template; default: bootstrap/smoke/<name>.sh.j2")
    image: str | None = Field(
        None, description=f"Key under `images.tags` in the component's merged values (default {DEFAULT_IMAGE})."
    )
    component: DnsLabel = Field(description="The component whose values, namespace and <release>-etc it uses.")
    gates: list[DnsLabel] = Field(
        default_factory=list,
        description="Run right after these components are written; their dependents wait for the check. "
        "Empty: run at the end of the run.",
    )
    timeout: int = Field(300, gt=0, description="Seconds (or a duration such as 2m); past it the check fails.")
    sla: float | None = Field(None, gt=0, description="Seconds; a pass slower than this counts as failed (slow).")
    schedule: int | None = Field(None, gt=0, description="Also run every this many seconds between runs.")
    on_failure: Literal["rollback", "none"] | None = Field(
        None,
        description="Ungated check: rollback rolls back the components the run wrote that the check names. "
        "(A gate check's failure always remediates its gates as their `remediation` says.)",
    )

    _timeout = field_validator("timeout", mode="before")(classmethod(lambda cls, v: _seconds(v)))
    _schedule = field_validator("schedule", mode="before")(classmethod(lambda cls, v: _seconds(v)))

    @model_validator(mode="after")
    def _check(self) -> SmokeCheckSpec:
        if len(set(self.gates)) != len(self.gates):
            raise ValueError("duplicate entries in gates")
        return self


def _no_duplicate_names(names: list[str]) -> None:
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"duplicate check name(s): {', '.join(dup)}")


class SmokeSpec(BaseModel):
    """values/_common/smoke.yaml and values/<cluster>/smoke.yaml"""

    model_config = ConfigDict(extra="forbid", title="deploy-manager smoke.yaml")

    checks: list[SmokeCheckSpec] = Field(default_factory=list, max_length=MAX_CHECKS)

    @model_validator(mode="after")
    def _unique(self) -> SmokeSpec:
        _no_duplicate_names([c.name for c in self.checks])
        return self


class _LayerCheck(BaseModel):
    """One entry of one layer: a check, or (in a later layer) the keys that override a check of the same name.
    The merged entry is validated as a `SmokeCheckSpec`."""

    model_config = ConfigDict(extra="forbid")

    name: DnsLabel
    script: Any = None
    image: Any = None
    component: Any = None
    gates: Any = None
    timeout: Any = None
    sla: Any = None
    schedule: Any = None
    on_failure: Any = None


class _Layer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checks: list[_LayerCheck] = Field(default_factory=list, max_length=MAX_CHECKS)

    @model_validator(mode="after")
    def _unique(self) -> _Layer:
        _no_duplicate_names([c.name for c in self.checks])
        return self


def json_schema() -> str:
    return schema_text(SmokeSpec)


def _validate(data: Any, raw: bytes, path: str) -> _Layer:
    if data is None:
        return _Layer()
    if not isinstance(data, dict):
        raise ConfigError("must be a mapping with `checks`", file=path, line=1)
    return validate_model(_Layer, data, raw, path)


def _layer(source: GitSource, commit: str, path: str) -> tuple[list[dict[str, Any]], bytes] | None:
    raw = source.read_file(commit, path)
    if raw is None:
        return None
    data = load_yaml(raw, path)
    _validate(data, raw, path)  # names, keys and duplicates per layer: errors name its lines
    return [{k: v for k, v in entry.items()} for entry in (data or {}).get("checks") or []], raw


def load_smoke(
    source: GitSource, commit: str, cluster: str, components: dict[str, DesiredComponent]
) -> tuple[SmokeCheck, ...]:
    """The cluster's checks, merged, validated and rendered; a `ConfigError` names the file, line and key."""
    merged: dict[str, tuple[dict[str, Any], str, int]] = {}  # name -> (entry, file, index in it)
    raws: dict[str, bytes] = {}
    common, own = smoke_files(cluster)
    for path in (common, own):
        layer = _layer(source, commit, path)
        if layer is None:
            continue
        entries, raws[path] = layer
        for i, entry in enumerate(entries):
            name = str(entry["name"])
            base = merged[name][0] if name in merged else {}
            merged[name] = (deep_merge(base, entry), path, i)
    checks: list[SmokeCheck] = []
    for entry, path, i in merged.values():
        try:
            spec = SmokeCheckSpec.model_validate(entry)
        except ValidationError as exc:  # named after the last layer that set the check
            err = exc.errors()[0]
            key = ("checks", str(i), *(str(p) for p in err["loc"]))
            raise ConfigError(
                err["msg"].removeprefix("Value error, "),
                file=path,
                line=line_of(key_lines(raws[path]), key),
                key=".".join(key),
            ) from exc

        def fail(message: str, field_: str, *, path: str = path, i: int = i) -> ConfigError:
            key = ("checks", str(i), field_)
            return ConfigError(message, file=path, line=line_of(key_lines(raws[path]), key), key=".".join(key))

        unknown = [c for c in (spec.component, *spec.gates) if c not in components]
        if unknown:
            if path == common:
                continue  # the common layer names components some clusters do not deploy
            field_ = "component" if spec.component in unknown else "gates"
            raise fail(f"unknown component {unknown[0]!r} (not in values/{cluster}/cluster.yaml)", field_)
        comp = components[spec.component]
        image = spec.image or DEFAULT_IMAGE
        if resolve_image(comp.values, image) is None:  # a typo must fail the plan, before any write
            raise fail(f"images.tags.{image} is not set in the values of {comp.name}", "image")
        script = spec.script or f"{SCRIPT_DIR}/{spec.name}.sh.j2"
        template = source.read_file(commit, script)
        if template is None:
            raise fail(f"smoke script {script} not found at commit {commit[:12]}", "script")
        rendered = render_script(
            template.decode(errors="replace"),
            file=script,
            values=comp.values,
            cluster=cluster,
            component=comp.name,
            release=comp.release,
            namespace=comp.namespace,
        )
        checks.append(
            SmokeCheck(
                name=spec.name,
                script=script,
                component=spec.component,
                image=image,
                gates=tuple(spec.gates),
                timeout=spec.timeout,
                sla=spec.sla,
                schedule=spec.schedule,
                on_failure=spec.on_failure,
                file=path,
                rendered=rendered,
            )
        )
    return tuple(checks)


def main() -> int:
    return write_schema(SMOKE_SCHEMA_PATH, json_schema())


if __name__ == "__main__":
    raise SystemExit(main())
