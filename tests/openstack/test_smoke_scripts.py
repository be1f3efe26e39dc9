"""The example clusters' workflow checks (values/_common/smoke.yaml, bootstrap/smoke/) against the real
services of the tier, run as their Jobs run them: the rendered script, SECRET_* env, /etc/<component>/.

Runs after test_openstack.py has started the services (the tier's session cloud). server-boot and volume-attach
run on the tier's hypervisor host (nova-compute on nova's fake virt driver) with the chart's cinder-volume (the
demo's fake backend): their servers get a network, so the host's Open vSwitch agent is registered with neutron
as its state report would (cloud.register_l2_agent; there is no dataplane, nova's fake driver plugs nothing).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
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


# Checks that need a hypervisor host: (check -> its component).
ON_A_HYPERVISOR = {"server-boot": "nova", "volume-attach": "cinder"}


@pytest.fixture
def hypervisor(cloud: c.Cloud) -> Iterator[None]:
    """The tier's hypervisor host up, mapped to cell1, and its L2 agent known to neutron (removed afterwards)."""
    for component in ("glance", "nova", "neutron", "cinder"):
        if not started(cloud, component):
            pytest.skip(f"{component} is not running: run the tier's whole directory (test_openstack.py starts it)")
    compute = cloud.start_compute()

    c.poll("nova-compute never reported up", lambda: cloud.nova_compute_up(compute), 180)
    step = next(s for s in cloud.rendered["nova"].comp.bootstrap if s["name"] == "discover-hosts")

    def mapped() -> bool:
        if c.COMPUTE_HOST in cloud.sql("SELECT host FROM nova_api.host_mappings").split():
            return True
        run = cloud.run_step("nova", step)  # what the next apply (`always: true`) or the periodic discovery does
        assert run.returncode == 0, run.output[-4000:]
        return False

    c.poll(f"{c.COMPUTE_HOST} was never mapped to a cell", mapped, 120)
    cloud.register_l2_agent(c.COMPUTE_HOST, c.COMPUTE_IP)
    try:
        yield
    finally:
        cloud.remove_l2_agent(c.COMPUTE_HOST)


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("name", sorted(ON_A_HYPERVISOR))
def test_hypervisor_check_passes_against_the_running_services(cloud: c.Cloud, hypervisor: None, name: str) -> None:
    """server-boot (a server with a network of its own to ACTIVE, deleted) and volume-attach (a volume attached
    through cinder's attachment API by nova, detached, both deleted), each as its Job runs it."""
    component = ON_A_HYPERVISOR[name]
    run = cloud.run_step(component, rendered(cloud, name))
    record(component, f"check {name}", "ok" if run.returncode == 0 else f"FAILED ({run.returncode})")
    hypervisor_log = cloud.compute.tail(60) if cloud.compute else ""
    assert run.returncode == 0, run.output[-4000:] + "\n--- nova-compute:\n" + hypervisor_log
    assert f"{name}: ok" in run.output
