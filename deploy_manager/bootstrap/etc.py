"""The chart's config files for bootstrap Jobs, rendered client-side with `helm template`.

`before` steps of a fresh install run before the chart exists, so the chart's own `<release>-etc`
Secret is not there yet. Rendering the chart with the same directory and values gives byte-identical
config files (our charts render deterministically), which the engine stores in `<release>-bootstrap-etc`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

import yaml

from deploy_manager.desired.yamlio import load_all_bounded
from deploy_manager.helm.runner import HelmRunner
from deploy_manager.models.errors import ChartError


def etc_name(release: str) -> str:
    """The chart convention (`common.fullname (list . "etc")`)."""
    return f"{release}-etc"[:63].rstrip("-")


def pick_etc_data(manifests: str, release: str) -> dict[str, str] | None:
    """The base64 `data` of the Secret `<release>-etc` in a multi-document render, None if absent."""
    wanted = etc_name(release)
    try:
        docs = load_all_bounded(manifests, f"helm template {release}")  # aliases bounded like the repo's YAML
    except yaml.YAMLError as exc:
        raise ChartError(f"release {release}: helm template output is not YAML: {exc}") from exc
    for doc in docs:
        if not isinstance(doc, dict) or doc.get("kind") != "Secret":
            continue
        if (doc.get("metadata") or {}).get("name") != wanted:
            continue
        data = {str(k): str(v) for k, v in (doc.get("data") or {}).items()}
        for key, value in (doc.get("stringData") or {}).items():
            data[str(key)] = base64.b64encode(str(value).encode()).decode()
        return data
    return None


def render_etc(
    helm: HelmRunner,
    *,
    chart: str,
    release: str,
    namespace: str,
    values: dict[str, Any],
    secrets: Iterable[str] = (),
) -> dict[str, str] | None:
    """Render the chart and return its config Secret's data (base64 values), or None if it has none."""
    out = helm.template(release=release, namespace=namespace, chart=chart, values=values, secrets=secrets)
    return pick_etc_data(out, release)
