"""Every bootstrap step declared by an example cluster renders (Jinja2, StrictUndefined) with that
cluster's values, is a strict idempotent-style shell script, and carries no secret."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
import pytest

from .layers import ROOT, Component, all_components, objects, renders

STEPS = [(comp, step) for comp in all_components() for step in comp.bootstrap]
IDS = [f"{c.cluster}-{c.name}-{s['name']}" for c, s in STEPS]
ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def script_path(comp: Component, step: dict[str, Any]) -> Path:
    return ROOT / step.get("script", f"bootstrap/{comp.name}/{step['name']}.sh.j2")


def render(comp: Component, step: dict[str, Any], values: dict[str, Any] | None = None) -> str:
    template = ENV.from_string(script_path(comp, step).read_text())
    return template.render(
        values=comp.values if values is None else values,
        cluster=comp.cluster,
        component=comp.name,
        release=comp.release,
        namespace=comp.namespace,
    )


def _leaves(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [leaf for k, v in node.items() for leaf in _leaves(v, f"{path}.{k}" if path else str(k))]
    return [(path, node)]


@pytest.mark.parametrize(("comp", "step"), STEPS, ids=IDS)
def test_step_declaration(comp: Component, step: dict[str, Any]) -> None:
    assert DNS_LABEL.fullmatch(step["name"]), step["name"]
    assert step.get("when", "before") in ("before", "after")
    assert script_path(comp, step).is_file(), script_path(comp, step)
    assert step["image"] in comp.values["images"]["tags"], f"{step['image']} is not under images.tags"
    for path in step.get("inputs", []):
        node: Any = comp.values
        for part in path.split("."):
            assert isinstance(node, dict) and part in node, f"input {path} is not in {comp.cluster}/{comp.name} values"
            node = node[part]


@pytest.mark.parametrize(("comp", "step"), STEPS, ids=IDS)
def test_step_renders_strict_and_without_secrets(comp: Component, step: dict[str, Any]) -> None:
    text = render(comp, step)
    assert text.startswith("#!/bin/bash\n")
    assert "\nset -euo pipefail\n" in text
    assert "set -x" not in text, "tracing would print the secrets the script reads from env"
    # Credentials only as the Job's SECRET_<NAME> env; nothing that looks like an inline password.
    assert not re.search(r"(?i)(--os-password|--password|password\s*=)\s*['\"]?(?!\$|%s)[\w!@#%^&*]", text), text
    # A secret given as an option's value is attached to it (`--password="$X"`): a separate argument that begins
    # with "-" (1 in 64 generated passwords) is read as an option and the step fails.
    assert not re.search(r"--[\w-]+\s+[\"']?\$\{?SECRET_", text), text
    for name in re.findall(r"\$\{?(SECRET_[A-Z0-9_]+)", text):
        ref = name.removeprefix("SECRET_").lower()
        known = {**comp.values.get("secrets", {}), **comp.values.get("bootstrap", {}).get("secrets", {})}
        assert ref in known or any(
            d.get("bindPasswordSecret") == ref for d in comp.values.get("domains", {}).values()
        ), f"{name} does not come from a Secret referenced in values"


@pytest.mark.parametrize(("comp", "step"), STEPS, ids=IDS)
def test_step_renders_deterministically(comp: Component, step: dict[str, Any]) -> None:
    assert render(comp, step) == render(comp, step)


def test_values_hold_secret_references_never_secret_values() -> None:
    """A key that names a credential holds a reference ({name, key}) or a Secret's name, never the value."""
    for comp in all_components():
        for path, _value in _leaves(comp.values):
            last = path.rsplit(".", 1)[-1].lower()
            if re.fullmatch(r"(\w*_)?(password|passwd|cookie|secret_key)", last):
                raise AssertionError(f"{comp.cluster}/{comp.name}: {path} holds a literal credential")
            if ".secrets." in f".{path}." and last not in ("name", "key"):
                raise AssertionError(f"{comp.cluster}/{comp.name}: {path}: a secret reference has only name and key")


def test_db_sync_does_not_rerun_for_unrelated_config() -> None:
    """A step's digest covers its rendered script: keystone's token lifetime must not appear in db-sync."""
    for comp in all_components():
        if comp.name != "keystone":
            continue
        [step] = [s for s in comp.bootstrap if s["name"] == "db-sync"]
        values = {**comp.values, "conf": {**comp.values.get("conf", {}), "keystone": {"token": {"expiration": 1}}}}
        assert render(comp, step, values) == render(comp, step)
        assert not any(i.startswith("conf.keystone.token") for i in step.get("inputs", []))
        # ...while a database move does change it (and so its digest).
        moved = {**comp.values, "global": {**comp.values["global"], "database": {"host": "db.elsewhere.example"}}}
        assert "@db.elsewhere.example:3306/keystone" in render(comp, step, moved)


@pytest.mark.parametrize(("comp", "step"), STEPS, ids=IDS)
def test_rendered_script_is_valid_bash_and_python(comp: Component, step: dict[str, Any]) -> None:
    text = render(comp, step)
    result = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"bash -n: {result.stderr}"
    for body in re.findall(r"<<'PY'\n(.*?)\nPY\n", text, re.S):
        compile(body, f"{comp.name}/{step['name']} (python heredoc)", "exec")


def _endpoints(text: str) -> dict[str, str]:
    return dict(re.findall(r'^ensure_endpoint (\w+) "([^"]+)"$', text, re.M))


@pytest.mark.helm
@pytest.mark.parametrize(("comp", "step"), [(c, s) for c, s in STEPS if s["name"] == "ks-register"],
                         ids=[i for i, (_, s) in zip(IDS, STEPS, strict=True) if s["name"] == "ks-register"])
def test_registered_endpoints_match_what_the_chart_exposes(comp: Component, step: dict[str, Any]) -> None:
    """The catalog URLs the script registers are the chart's own Ingress host and Service port."""
    endpoints = _endpoints(render(comp, step))
    assert set(endpoints) == {"public", "internal", "admin"}
    objs = objects(renders()[(comp.cluster, comp.name)])
    part = comp.values["catalog"]["part"]
    name = comp.release if part == comp.name else f"{comp.release}-{part}"
    [ingress] = [o for o in objs if o["kind"] == "Ingress" and o["metadata"]["name"] == name]
    [service] = [o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == name]
    public = urlsplit(endpoints["public"])
    assert public.hostname == ingress["spec"]["rules"][0]["host"]
    assert public.scheme == ("https" if ingress["spec"].get("tls") else "http")
    internal = urlsplit(endpoints["internal"])
    assert internal.hostname == f"{name}.{comp.namespace}.svc.cluster.local"
    assert internal.port == service["spec"]["ports"][0]["port"]


@pytest.mark.helm
@pytest.mark.parametrize("comp", [c for c in all_components() if c.name == "keystone"], ids=lambda c: c.cluster)
def test_keystone_bootstrap_urls_match_the_chart(comp: Component) -> None:
    [step] = [s for s in comp.bootstrap if s["name"] == "bootstrap"]
    text = render(comp, step)
    public = urlsplit(re.search(r'--bootstrap-public-url "([^"]+)"', text).group(1))  # type: ignore[union-attr]
    internal = urlsplit(re.search(r'--bootstrap-internal-url "([^"]+)"', text).group(1))  # type: ignore[union-attr]
    objs = objects(renders()[(comp.cluster, comp.name)])
    [ingress] = [o for o in objs if o["kind"] == "Ingress"]
    assert public.hostname == ingress["spec"]["rules"][0]["host"] and public.path == "/v3"
    assert internal.hostname == f"{comp.release}-api.{comp.namespace}.svc.cluster.local" and internal.port == 5000
    assert f'--bootstrap-region-id "{comp.values["global"]["region"]}"' in text
