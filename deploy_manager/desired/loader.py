"""Load one cluster's desired state at one commit.

Reads only through `GitSource` at the given sha. Everything that can be wrong with the repo's content
(YAML, schema, unknown chart path, unknown `needs`) is raised here as a `ConfigError`/`ChartError`
naming the file and line or key path, before anything touches the cluster.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from deploy_manager.desired.bootstrap import render_script, resolve_image, step_digest
from deploy_manager.desired.charts import ChartInfo, chart_info
from deploy_manager.desired.images import image_problems
from deploy_manager.desired.schema import ClusterSpec, ComponentSpec
from deploy_manager.desired.smoke import load_smoke
from deploy_manager.desired.values import canonical_json, deep_merge, sha256_hex
from deploy_manager.desired.yamlio import key_lines, line_of, load_yaml, validate_model
from deploy_manager.models.desired import (
    BootstrapStep,
    ChartSpec,
    DesiredCluster,
    DesiredComponent,
    DriftPolicy,
    IgnoreRule,
    Remediation,
)
from deploy_manager.models.errors import ChartError, ConfigError
from deploy_manager.source.git import GitSource

# Label values are at most 63 characters; 40 hex characters (160 bits) are plenty to tell digests apart.
DIGEST_LEN = 40
COMMON_LAYER = "_common"
# A layer applying to every component. Component names are DNS labels (no "_"), so it never clashes with one.
GLOBAL_LAYER = "_global"


def cluster_file(cluster: str) -> str:
    return f"values/{cluster}/cluster.yaml"


def values_layers(cluster: str, component: str) -> list[str]:
    """The values files of a component, in merge order (later wins); each is optional.

    Shared before specific, on two axes: every cluster before this cluster, and within each, every
    component before this component.
    """
    return [
        f"values/{COMMON_LAYER}/{GLOBAL_LAYER}.yaml",
        f"values/{COMMON_LAYER}/{component}.yaml",
        f"values/{cluster}/{GLOBAL_LAYER}.yaml",
        f"values/{cluster}/{component}.yaml",
    ]


def load_cluster(source: GitSource, commit: str, cluster: str) -> DesiredCluster:
    path = cluster_file(cluster)
    if cluster == COMMON_LAYER or "/" in cluster or not cluster:
        raise ConfigError(f"invalid cluster name {cluster!r}")
    raw = source.read_file(commit, path)
    if raw is None:
        raise ConfigError(f"no such cluster {cluster!r}: {path} not found at commit {commit[:12]}")
    data = load_yaml(raw, path)
    spec = _validate(data, raw, path)

    charts: dict[str, ChartInfo] = {}
    components: dict[str, DesiredComponent] = {}
    for name, comp in spec.components.items():
        for need in comp.needs:
            if need not in spec.components:
                key = ("components", name, "needs")
                raise ConfigError(
                    f"unknown component {need!r} in needs of {name!r}",
                    file=path,
                    line=line_of(key_lines(raw), key),
                    key=".".join(key),
                )
        chart = _chart(source, commit, comp, charts, path, raw, name)
        components[name] = _component(source, commit, cluster, spec, name, comp, chart)
        _check_images(source, commit, cluster, spec, components[name])
    smoke = load_smoke(source, commit, cluster, components)
    return DesiredCluster(
        name=cluster,
        commit=commit,
        namespace=spec.namespace,
        components=components,
        suspended=spec.suspend,
        prune=spec.prune,
        smoke=smoke,
    )


def _validate(data: Any, raw: bytes, path: str) -> ClusterSpec:
    if not isinstance(data, dict):
        raise ConfigError("must be a mapping with `components`", file=path, line=1)
    return validate_model(ClusterSpec, data, raw, path)


def _chart(
    source: GitSource,
    commit: str,
    comp: ComponentSpec,
    cache: dict[str, ChartInfo],
    path: str,
    raw: bytes,
    name: str,
) -> ChartSpec:
    if comp.remote:
        ref = f"{comp.repo or ''}|{comp.chart}|{comp.version}"
        return ChartSpec(
            ref=comp.chart,
            repo=comp.repo,
            version=comp.version,
            digest=sha256_hex(ref)[:DIGEST_LEN],
            name=comp.chart.rstrip("/").rsplit("/", 1)[-1],
            chart_version=comp.version or "",
        )
    key = ("components", name, "chart")
    if comp.chart not in cache:
        try:
            cache[comp.chart] = chart_info(source, commit, comp.chart)
        except ChartError as exc:
            raise ConfigError(str(exc), file=path, line=line_of(key_lines(raw), key), key=".".join(key)) from exc
    info = cache[comp.chart]
    return ChartSpec(path=info.path, digest=info.digest, name=info.name, chart_version=info.version)


def _load_values(source: GitSource, commit: str, file: str) -> dict[str, Any] | None:
    """The values in `file`, or None if there is no such file (parsed once per content: blob id)."""
    blob = source.file_id(commit, file)
    if blob is None:
        return None
    data = source.memo(("values", blob, file), lambda: load_yaml(source.read_file(commit, file) or b"", file))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"values must be a mapping, not {type(data).__name__}", file=file, line=1)
    return data


def _check_images(source: GitSource, commit: str, cluster: str, spec: ClusterSpec, comp: DesiredComponent) -> None:
    """A malformed image digest, or a floating tag where the cluster requires digests: the first one, naming the
    values file that sets it (else the chart's defaults), its key and the component."""
    layers = [(f, v) for f in comp.values_files if (v := _load_values(source, commit, f)) is not None]
    problems = image_problems(
        cluster=cluster,
        component=comp.name,
        values=comp.values,
        layers=layers,
        require_digests=spec.require_image_digests,
    )
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        file = first.file or f"{comp.chart.describe()} values.yaml"
        raise ConfigError(first.message + more, file=file, key=first.key)


def _component(
    source: GitSource,
    commit: str,
    cluster: str,
    spec: ClusterSpec,
    name: str,
    comp: ComponentSpec,
    chart: ChartSpec,
) -> DesiredComponent:
    values: dict[str, Any] = {}
    files: list[str] = []
    for layer in values_layers(cluster, name):
        layer_values = _load_values(source, commit, layer)
        if layer_values is not None:
            files.append(layer)
            values = deep_merge(values, layer_values)
    # Helm stores values as JSON; normalise now so the digest and the diff see what helm will see.
    values = json.loads(canonical_json(values))
    release = comp.release or name
    namespace = comp.namespace or spec.namespace

    steps: list[BootstrapStep] = []
    for i, s in enumerate(comp.bootstrap):
        script = s.script or f"bootstrap/{name}/{s.name}.sh.j2"
        raw = source.read_file(commit, script)
        if raw is None:
            raise ConfigError(
                f"bootstrap script {script} not found at commit {commit[:12]}",
                file=cluster_file(cluster),
                key=f"components.{name}.bootstrap.{i}.script",
            )
        step = BootstrapStep(
            name=s.name,
            script=script,
            when=s.when,
            image=s.image,
            inputs=tuple(s.inputs),
            always=s.always,
            timeout=s.timeout,
        )
        rendered = render_script(
            raw.decode(),
            file=script,
            values=values,
            cluster=cluster,
            component=name,
            release=release,
            namespace=namespace,
        )
        if s.image and resolve_image(values, s.image) is None:  # a typo must fail the plan, before any write
            raise ConfigError(
                f"images.tags.{s.image} is not set in the values of {name}",
                file=cluster_file(cluster),
                key=f"components.{name}.bootstrap.{i}.image",
            )
        steps.append(replace(step, digest=step_digest(step, rendered, values), rendered=rendered))

    values_digest = sha256_hex(canonical_json(values))[:DIGEST_LEN]
    bootstrap_digest = sha256_hex(*(s.digest for s in steps))[:DIGEST_LEN] if steps else ""
    settings = canonical_json({"release": release, "namespace": namespace})
    digest = sha256_hex(chart.digest, values_digest, bootstrap_digest, settings)[:DIGEST_LEN]
    return DesiredComponent(
        name=name,
        release=release,
        namespace=namespace,
        chart=chart,
        needs=tuple(comp.needs),
        timeout=comp.timeout,
        values=values,
        values_files=tuple(files),
        bootstrap=tuple(steps),
        secret_paths=tuple(comp.secrets),
        digest=digest,
        values_digest=values_digest,
        bootstrap_digest=bootstrap_digest,
        remediation=_remediation(spec, comp),
        suspended=comp.suspend,
        drift=_drift(spec, comp),
        allow_release_change=comp.allowReleaseChange,
    )


def _remediation(spec: ClusterSpec, comp: ComponentSpec) -> Remediation:
    """The component's remediation: its own keys, else the cluster's, else the defaults."""
    own, default = comp.remediation, spec.remediation
    retries = next((r.retries for r in (own, default) if r is not None and r.retries is not None), 0)
    on_failure = next((r.on_failure for r in (own, default) if r is not None and r.on_failure is not None), None)
    return Remediation(retries=retries, on_failure=on_failure)


def _drift(spec: ClusterSpec, comp: ComponentSpec) -> DriftPolicy:
    """The component's drift mode, else the cluster's, else detect; the cluster's ignore rules, then its own."""
    own, default = comp.drift, spec.drift
    mode = next((d.mode for d in (own, default) if d is not None and d.mode is not None), "detect")
    rules = [*(default.ignore if default else []), *(own.ignore if own else [])]
    return DriftPolicy(
        mode=mode,
        ignore=tuple(IgnoreRule(r.kind, r.name, r.namespace, tuple(r.paths or ())) for r in rules),
    )
