"""The example clusters' workflow checks (values/_common/smoke.yaml, bootstrap/smoke/) against the real
services of the tier, run as their Jobs run them: the rendered script, SECRET_* env, /etc/<component>/.

Runs after test_openstack.py has started keystone, glance, placement and neutron (the tier's session cloud).
Not here yet: server-boot and volume-attach (the tier's nova-compute and cinder-volume are started by the
workflow tests alone, and servers there boot without a network); their scripts are checked for syntax only
(`bash -n`, tests/charts/test_smoke_templates.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy_manager.desired.bootstrap import render_script

from . import cloud as c
from .conftest import record

pytestmark = pytest.mark.openstack

ROOT = Path(__file__).resolve().parents[2]
RUNNABLE = {
    "token-issue": "keystone",
    "image-crud": "glance",
    "placement-providers": "placement",
    "network-crud": "neutron",
}


def rendered(cloud: c.Cloud, name: str) -> dict[str, Any]:
    checks = yaml.safe_load((ROOT / "values/_common/smoke.yaml").read_text())["checks"]
    spec = next(s for s in checks if s["name"] == name)
    comp = cloud.rendered[spec["component"]].comp
    script = render_script(
        (ROOT / spec["script"]).read_text(),
        file=spec["script"],
        values=comp.values,
        cluster=c.CLUSTER,
        component=comp.name,
        release=comp.release,
        namespace=comp.namespace,
    )
    return {"name": f"smoke-{name}", "rendered": script, "timeout": spec["timeout"]}


def started(cloud: c.Cloud, component: str) -> bool:
    return any(name.startswith(f"{component}-") for name in cloud.pods)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", sorted(RUNNABLE))
def test_check_passes_against_the_running_service_and_cleans_up(cloud: c.Cloud, name: str) -> None:
    component = RUNNABLE[name]
    if not started(cloud, component):
        pytest.skip(f"{component} is not running: run the tier's whole directory (test_openstack.py starts it)")
    step = rendered(cloud, name)
    run = cloud.run_step(component, step)
    record(component, f"check {name}", "ok" if run.returncode == 0 else f"FAILED ({run.returncode})")
    assert run.returncode == 0, run.output[-4000:]
    assert f"{name}: ok" in run.output
    again = cloud.run_step(component, step)  # a second run does not trip over the first
    assert again.returncode == 0, again.output[-4000:]


@pytest.mark.timeout(600)
def test_image_check_sweeps_what_a_killed_run_left(cloud: c.Cloud) -> None:
    if not started(cloud, "glance"):
        pytest.skip("glance is not running: run the tier's whole directory")
    leftover = "dm-smoke-image-crud-1-1"
    made = cloud.client(
        "image", "create", "--disk-format", "raw", "--container-format", "bare", "--file", "/etc/hostname", leftover
    )
    assert made.returncode == 0, made.stdout + made.stderr
    run = cloud.run_step("glance", rendered(cloud, "image-crud"))
    assert run.returncode == 0, run.output[-4000:]
    listed = cloud.client("image", "list", "-f", "json")
    names = {i["Name"] for i in json.loads(listed.stdout)}
    assert not {n for n in names if n.startswith("dm-smoke-")}, names
