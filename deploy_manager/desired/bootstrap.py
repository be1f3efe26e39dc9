"""Bootstrap step declarations: script rendering (Jinja2) and the step digest.

A step's digest = sha256(rendered script, resolved image, values at `inputs`). The Jinja2 context of a
script is `values` (the component's merged values), `cluster`, `component`, `release`, `namespace`.
Execution lives in deploy_manager.bootstrap; this module only decides *what* a step is.
"""

from __future__ import annotations

from typing import Any

import jinja2

from deploy_manager.desired.values import canonical_json, get_path, sha256_hex
from deploy_manager.models.desired import BootstrapStep
from deploy_manager.models.errors import ConfigError

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)


def render_script(
    template: str, *, file: str, values: dict[str, Any], cluster: str, component: str, release: str, namespace: str
) -> str:
    try:
        return _ENV.from_string(template).render(
            values=values, cluster=cluster, component=component, release=release, namespace=namespace
        )
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"template error: {exc.message}", file=file, line=exc.lineno) from exc
    except jinja2.TemplateError as exc:
        raise ConfigError(f"cannot render: {exc}", file=file) from exc


def resolve_image(values: dict[str, Any], image: str | None) -> str | None:
    if image is None:
        return None
    found = get_path(values, f"images.tags.{image}")
    return str(found) if found is not None else None


def step_digest(step: BootstrapStep, rendered: str, values: dict[str, Any]) -> str:
    image = resolve_image(values, step.image) or ""
    inputs = {path: get_path(values, path) for path in step.inputs}
    settings = canonical_json({"when": step.when, "always": step.always, "timeout": step.timeout})
    return sha256_hex(rendered, image, canonical_json(inputs), settings)
