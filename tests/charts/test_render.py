"""What the charts render for the example clusters: valid Kubernetes objects, byte-identical on
every render, and a `checksum/config` that moves with the config and nothing else."""

from __future__ import annotations

import base64
import copy
import re
from collections import Counter
from typing import Any

import kubernetes_validate
import pytest
import yaml

from .layers import Component, all_components, components, deep_merge, helm, objects, renders, template

COMPONENTS = list(all_components())
IDS = [f"{c.cluster}-{c.name}" for c in COMPONENTS]
K8S_VERSION = "1.35.0"


def _objs(comp: Component) -> list[dict[str, Any]]:
    return objects(renders()[(comp.cluster, comp.name)])


def _by_kind(comp: Component, kind: str) -> list[dict[str, Any]]:
    return [o for o in _objs(comp) if o["kind"] == kind]


@pytest.mark.helm
@pytest.mark.parametrize("comp", COMPONENTS, ids=IDS)
def test_objects_validate_against_kubernetes_schema(comp: Component) -> None:
    objs = _objs(comp)
    assert objs, f"{comp.cluster}/{comp.name} rendered nothing"
    for obj in objs:
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{comp.cluster}/{comp.name} {obj['kind']}/{obj['metadata']['name']}: {exc}") from exc
    names = Counter((o["kind"], o["metadata"]["name"]) for o in objs)
    assert not [k for k, n in names.items() if n > 1], f"duplicate objects: {names}"


@pytest.mark.helm
@pytest.mark.parametrize("comp", COMPONENTS, ids=IDS)
def test_render_is_byte_identical(comp: Component) -> None:
    assert template(comp) == renders()[(comp.cluster, comp.name)]


@pytest.mark.helm
@pytest.mark.parametrize("comp", COMPONENTS, ids=IDS)
def test_workloads_have_probes_resources_and_a_pdb(comp: Component) -> None:
    workloads = _by_kind(comp, "Deployment") + _by_kind(comp, "StatefulSet")
    pdbs = {p["metadata"]["name"]: p for p in _by_kind(comp, "PodDisruptionBudget")}
    for wl in workloads:
        name = wl["metadata"]["name"]
        spec = wl["spec"]["template"]["spec"]
        for container in spec["containers"]:
            assert container.get("livenessProbe") and container.get("readinessProbe"), f"{name}: probes"
            assert container["resources"].get("requests"), f"{name}: resource requests"
        pdb = pdbs.get(name)
        assert pdb is not None, f"{name} has no PodDisruptionBudget"
        assert pdb["spec"]["selector"]["matchLabels"] == wl["spec"]["selector"]["matchLabels"]
        if comp.values.get("configFiles") or _by_kind(comp, "Secret"):
            annotations = wl["spec"]["template"]["metadata"].get("annotations", {})
            assert re.fullmatch(r"[0-9a-f]{64}", annotations.get("checksum/config", "")), f"{name}: checksum/config"


# Where each API listens and what its probes ask: the facts from openstack-helm the charts must keep.
API_PROBES = {
    ("keystone", "keystone-api"): (5000, "/healthcheck"),
    ("glance", "glance-api"): (9292, "/healthcheck"),
    ("placement", "placement-api"): (8778, "/"),
    ("nova", "nova-api"): (8774, "/"),
    ("neutron", "neutron-server"): (9696, "/"),
    ("cinder", "cinder-api"): (8776, "/"),
    ("horizon", "horizon"): (80, "/"),
}


@pytest.mark.helm
@pytest.mark.parametrize("comp", COMPONENTS, ids=IDS)
def test_api_probes_fit_the_service(comp: Component) -> None:
    for (component, deployment), (port, path) in API_PROBES.items():
        if component != comp.name:
            continue
        [dep] = [d for d in _by_kind(comp, "Deployment") if d["metadata"]["name"] == deployment]
        [container] = dep["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe in (container["livenessProbe"], container["readinessProbe"]):
            assert probe["httpGet"]["path"] == path
            assert ports[probe["httpGet"]["port"]] == port


def _secret_files(comp: Component, manifest: str) -> dict[str, str]:
    [etc] = [o for o in objects(manifest) if o["kind"] == "Secret" and o["metadata"]["name"] == f"{comp.release}-etc"]
    return {k: base64.b64decode(v).decode() for k, v in etc["data"].items()}


def _checksums(manifest: str) -> dict[str, str]:
    return {
        o["metadata"]["name"]: o["spec"]["template"]["metadata"].get("annotations", {}).get("checksum/config", "")
        for o in objects(manifest)
        if o["kind"] in ("Deployment", "StatefulSet")
    }


def _keystone(cluster: str = "demo") -> Component:
    [comp] = [c for c in components(cluster) if c.name == "keystone"]
    return comp


@pytest.mark.helm
def test_keystone_conf_is_rendered_as_ini_from_the_conf_map() -> None:
    comp = _keystone()
    conf = _secret_files(comp, renders()[(comp.cluster, comp.name)])["keystone.conf"]
    token = re.search(r"^\[token\]\n((?:[^\[\n].*\n)*)", conf, re.M)
    assert token, conf
    assert f"expiration = {comp.values['conf']['keystone']['token']['expiration']}\n" in token.group(1)
    assert "provider = fernet\n" in token.group(1)
    assert conf.startswith("[DEFAULT]\n")
    assert "password" not in conf.lower(), "passwords reach services as env from Secrets, never in the config"


@pytest.mark.helm
def test_config_change_moves_checksum_and_replicas_change_does_not() -> None:
    comp = _keystone()
    base = renders()[(comp.cluster, comp.name)]
    changed_conf = deep_merge(comp.values, {"conf": {"keystone": {"token": {"expiration": 7200}}}})
    changed_replicas = deep_merge(comp.values, {"services": {"api": {"replicas": 5}}})
    conf_render, replicas_render = template(comp, changed_conf), template(comp, changed_replicas)

    assert _checksums(conf_render)["keystone-api"] != _checksums(base)["keystone-api"]
    assert "expiration = 7200" in _secret_files(comp, conf_render)["keystone.conf"]
    assert _checksums(replicas_render) == _checksums(base)
    [dep] = [o for o in objects(replicas_render) if o["kind"] == "Deployment"]
    assert dep["spec"]["replicas"] == 5
    # Only the replica count differs: the pod template (what rolls pods) is untouched.
    [before] = [o for o in objects(base) if o["kind"] == "Deployment"]
    assert dep["spec"]["template"] == before["spec"]["template"]


@pytest.mark.helm
def test_image_change_changes_the_pod_template_but_not_the_checksum() -> None:
    comp = _keystone()
    values = copy.deepcopy(comp.values)
    values["images"]["tags"]["keystone_api"] = "quay.io/airshipit/keystone:2025.1-ubuntu_noble"
    render = template(comp, values)
    [dep] = [o for o in objects(render) if o["kind"] == "Deployment"]
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":2025.1-ubuntu_noble")
    assert _checksums(render) == _checksums(renders()[(comp.cluster, comp.name)])


@pytest.mark.helm
@pytest.mark.parametrize("comp", COMPONENTS, ids=IDS)
def test_credentials_only_as_secret_references(comp: Component) -> None:
    """No password in any rendered object: containers get them through secretKeyRef env only."""
    manifest = renders()[(comp.cluster, comp.name)]
    if any(o["kind"] == "Secret" and o["metadata"]["name"] == f"{comp.release}-etc" for o in objects(manifest)):
        for name, text in _secret_files(comp, manifest).items():
            assert not re.search(r"(?im)^\s*(password|\w*_password|transport_url|connection)\s*=", text), name
    for obj in objects(manifest):
        for env in _containers_env(obj):
            if re.search(r"PASS|PASSWORD|COOKIE|SECRET", env["name"]) and "value" in env:
                assert re.fullmatch(r"\$\(SECRET_[A-Z0-9_]+\)", env["value"]), env
            if "value" in env and "://" in env["value"]:
                assert not re.search(r"://[^:/@]+:(?!\$\()[^@]*@", env["value"]), f"literal credentials in {env}"


def _containers_env(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    return [env for c in spec.get("containers", []) for env in c.get("env", [])]


def _configured(cluster: str) -> list[Component]:
    return [c for c in components(cluster) if "configFiles" in yaml.safe_load((c.chart / "values.yaml").read_text())]


@pytest.mark.helm
@pytest.mark.parametrize("comp", _configured("demo"), ids=lambda c: c.name)
def test_every_config_file_feeds_the_checksum_of_every_pod(comp: Component) -> None:
    """For each config file of the chart: one more option moves the checksum of every workload."""
    base = _checksums(renders()[(comp.cluster, comp.name)])
    assert base and all(base.values())
    files = yaml.safe_load((comp.chart / "values.yaml").read_text())["configFiles"]
    for key, spec in files.items():
        if spec.get("format", "ini") == "raw":
            continue
        extra = {"DEFAULT": {"dm_test_marker": 1}} if spec.get("format", "ini") == "ini" else {"dm_test_marker": 1}
        changed = _checksums(template(comp, deep_merge(comp.values, {"conf": {key: extra}})))
        assert changed.keys() == base.keys()
        assert all(changed[name] != base[name] for name in base), f"{key} does not reach every checksum"


@pytest.mark.helm
def test_ini_rendering_of_option_kinds() -> None:
    comp = _keystone()
    conf = {
        "DEFAULT": {
            "big": 1000000,
            "ratio": 0.5,
            "flag": True,
            "hosts": ["a:1", "b:2"],
            "dropped": None,
            "repeated": {"type": "multistring", "values": ["x", "y"]},
        },
        "token": {"expiration": 3600},
    }
    values = deep_merge(comp.values, {"conf": {"keystone": conf}})
    rendered = _secret_files(comp, template(comp, values))["keystone.conf"]
    default = rendered.split("\n\n", 1)[0].splitlines()
    assert default[0] == "[DEFAULT]"
    assert "big = 1000000" in default and "ratio = 0.5" in default and "flag = true" in default
    assert "hosts = a:1,b:2" in default
    assert "repeated = x" in default and "repeated = y" in default
    assert not any(line.startswith("dropped") for line in default)
    assert default[1:] == sorted(default[1:]), "keys render sorted"


@pytest.mark.helm
@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ({"token": "3600"}, "section [token] must be a map"),
        ({"token": {"expiration": {"seconds": 1}}}, "[token] expiration is a map"),
    ],
)
def test_malformed_conf_fails_the_render_naming_the_section(conf: dict[str, Any], message: str) -> None:
    comp = _keystone()
    values = copy.deepcopy(comp.values)
    values["conf"]["keystone"] = conf
    with pytest.raises(AssertionError, match=re.escape(message)):
        template(comp, values)


@pytest.mark.helm
def test_missing_image_tag_fails_the_render_naming_the_key() -> None:
    comp = _keystone()
    values = copy.deepcopy(comp.values)
    del values["images"]["tags"]["keystone_api"]
    with pytest.raises(AssertionError, match=re.escape("images.tags.keystone_api is not set")):
        template(comp, values)


@pytest.mark.helm
@pytest.mark.parametrize("comp", _configured("demo"), ids=lambda c: c.name)
def test_config_secret_renders_alone_for_before_steps(comp: Component) -> None:
    """Before the first install the engine can create `<release>-etc` for `before` steps from
    `helm template --show-only templates/secret-etc.yaml`: the same object the release will own."""
    result = helm(
        "template", comp.release, str(comp.chart), "--namespace", comp.namespace,
        "--show-only", "templates/secret-etc.yaml", values=comp.values,
    )
    assert result.returncode == 0, result.stderr
    [alone] = objects(result.stdout)
    [full] = [o for o in _objs(comp) if o["kind"] == "Secret" and o["metadata"]["name"] == f"{comp.release}-etc"]
    assert alone == full
