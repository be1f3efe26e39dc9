"""The demo cluster's OpenStack, run for real from what the charts and bootstrap scripts render.

Per service, in the order the cluster's `needs` start them: every config file passes
`oslo-config-validator` for the service's option namespaces; every bootstrap step runs its rendered
script as its Job would (`before` steps, then the workloads, then `after` steps); the kubelet's
readiness and liveness probes pass; then the user workflow works against the running APIs.

Hosts the charts do not deploy run as processes from the rendered config plus a host file (cloud.start_compute):
nova-compute on nova's fake virt driver. cinder-volume is the cinder chart's `volume` workload, run from the render
with the demo's backend (cinder's fake driver).
Servers boot without a network (`--nic none`): binding a port to a host needs an L2 agent (Open vSwitch), and
there is no dataplane here. nova-novncproxy does not run (cloud.NOT_RUN).
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.charts import layers

from . import cloud as c
from .conftest import record

pytestmark = pytest.mark.openstack

# oslo.config namespaces of each config file (the services' own oslo-config-generator files).
NAMESPACES: dict[tuple[str, str], list[str]] = {
    ("keystone", "keystone.conf"): ["keystone", "oslo.cache", "oslo.log", "oslo.messaging", "oslo.policy",
                                    "oslo.db", "oslo.middleware", "osprofiler"],
    ("glance", "glance-api.conf"): ["glance.api", "glance.store", "glance.multi_store", "oslo.concurrency",
                                    "oslo.messaging", "oslo.db", "oslo.policy", "keystonemiddleware.auth_token",
                                    "oslo.limit", "oslo.log", "oslo.middleware", "osprofiler"],
    ("placement", "placement.conf"): ["placement.conf", "keystonemiddleware.auth_token", "oslo.log",
                                      "oslo.middleware", "oslo.policy", "osprofiler", "oslo.concurrency"],
    ("nova", "nova.conf"): ["nova.conf", "keystonemiddleware.auth_token", "oslo.log", "oslo.messaging",
                            "oslo.policy", "oslo.privsep", "oslo.service.periodic_task", "oslo.service.service",
                            "oslo.db", "oslo.middleware", "oslo.concurrency", "oslo.reports",
                            "oslo.versionedobjects", "os_vif", "os_brick", "osprofiler", "oslo.limit", "oslo.cache"],
    ("neutron", "neutron.conf"): ["neutron", "neutron.agent", "neutron.db", "neutron.extensions", "nova.auth",
                                  "ironic.auth", "designate.auth", "placement.auth", "oslo.log", "oslo.db",
                                  "oslo.policy", "oslo.concurrency", "oslo.messaging", "oslo.middleware",
                                  "oslo.service.sslutils", "oslo.service.wsgi", "oslo.reports",
                                  "keystonemiddleware.auth_token", "osprofiler"],
    ("neutron", "ml2_conf.ini"): ["neutron.ml2"],
    ("cinder", "cinder.conf"): ["cinder", "castellan.config", "keystonemiddleware.auth_token", "osprofiler",
                                "oslo.concurrency", "oslo.db", "oslo.log", "oslo.messaging", "oslo.middleware",
                                "oslo.policy", "oslo.reports", "oslo.service.periodic_task", "oslo.service.service",
                                "oslo.service.sslutils", "oslo.service.wsgi", "oslo.versionedobjects", "os_brick"],
}
# cinder-volume's own file (the chart's `volume.backends`): [DEFAULT] with cinder's options, one section per backend.
NAMESPACES[("cinder", "cinder-volume.conf")] = NAMESPACES[("cinder", "cinder.conf")]


def test_image_tags_name_the_installed_release() -> None:
    """The images the charts deploy are the release the tier runs (and no tag floats)."""
    for comp in layers.components(c.CLUSTER):
        tags = (comp.values.get("images") or {}).get("tags") or {}
        for key, image in tags.items():
            if image.startswith("quay.io/airshipit/"):
                assert re.search(rf":{re.escape(c.RELEASE)}-", image), f"{comp.name}: images.tags.{key} {image}"
        assert (comp.values.get("images") or {}).get("pullPolicy", "IfNotPresent") in ("IfNotPresent", "Always")


VALIDATED = sorted(NAMESPACES)
# Sections whose keystoneauth plugin options are registered only at runtime (the auth_type's plugin), so the
# option namespaces do not list them: checked against the service's own options plus the plugin's.
PLUGIN_SECTIONS: dict[tuple[str, str], dict[str, str]] = {
    ("cinder", "cinder.conf"): {"nova": "from cinder.compute import nova as m\n"
                                        "own = m.nova_opts + m.nova_session_opts + m.nova_auth_opts"},
    # A backend section holds what cinder-volume registers there: backend_host, the manager's backend options and
    # the volume driver's common ones (a real driver adds its own; the demo's fake driver has none).
    ("cinder", "cinder-volume.conf"): {"fake": "from cinder import objects\nobjects.register_all()\n"
                                               "from cinder.cmd import volume as v\n"
                                               "from cinder.volume import driver as d, manager as mgr\n"
                                               "own = [v.host_opt] + mgr.volume_backend_opts + d.volume_opts"},
}


@pytest.mark.parametrize(("service", "file"), VALIDATED, ids=lambda x: str(x))
def test_config_validates(venv_only: None, service: str, file: str, tmp_path: Path) -> None:
    """Unknown options and malformed values in a rendered config file fail (warnings are fatal)."""
    rendered = c.render(service).etc()
    assert file in rendered, f"{service}-etc renders no {file}"
    path = tmp_path / file
    path.write_bytes(rendered[file])
    argv = [str(c.VENV / "bin" / "oslo-config-validator"), "--input-file", str(path), "--fatal-warnings"]
    for namespace in NAMESPACES[(service, file)]:
        argv += ["--namespace", namespace]
    plugin_sections = PLUGIN_SECTIONS.get((service, file), {})
    for group in plugin_sections:
        argv += ["--exclude-group", group]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    output = (result.stdout + result.stderr).strip()
    for group, own in plugin_sections.items():
        unknown = _unknown_plugin_options(path, group, own)
        if unknown:
            result = subprocess.CompletedProcess(argv, 1)
            output += f"\n[{group}] has options neither the service nor its auth plugin knows: {unknown}"
    record(service, f"{file} validated", "ok" if result.returncode == 0 else "FAILED")
    assert result.returncode == 0, f"{service}/{file}:\n{output}\n--- file:\n{rendered[file].decode()}"


def _unknown_plugin_options(path: Path, group: str, own: str) -> str:
    """The keys of [group] in `path` that are neither the service's options there nor its auth_type plugin's."""
    code = own + textwrap.dedent(f"""
        import configparser, json
        from keystoneauth1 import loading
        parser = configparser.RawConfigParser(default_section="\\0")  # [DEFAULT] is not inherited here
        parser.read({str(path)!r})
        section = dict(parser[{group!r}])
        known = {{o.dest for o in own}}
        known |= {{o.dest for o in loading.get_auth_plugin_conf_options(section.get("auth_type", "password"))}}
        print(json.dumps(sorted(k for k in section if k.replace("-", "_") not in known)))
    """)
    out = subprocess.run([str(c.VENV / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    unknown = json.loads(out.stdout)
    return ", ".join(unknown)


def _steps(cloud: c.Cloud, service: str, when: str) -> list[dict[str, Any]]:
    return [s for s in cloud.rendered[service].comp.bootstrap if s["when"] == when]


def _run_steps(cloud: c.Cloud, service: str, when: str) -> None:
    for step in _steps(cloud, service, when):
        run = cloud.run_step(service, step)
        record(service, f"step {step['name']}", "ok" if run.returncode == 0 else f"FAILED ({run.returncode})")
        assert run.returncode == 0, f"{service} {step['name']} exited {run.returncode}:\n{_clean(run.output)}"


def _clean(text: str, lines: int = 60) -> str:
    """The end of a log without eventlet's multi-line deprecation banner."""
    noise = re.compile(r"(?i)eventlet|framework\.|migration\.html|recommend against|^\s*$|from eventlet")
    return "\n".join([line for line in text.splitlines() if not noise.search(line)][-lines:])


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("service", c.SERVICES)
def test_service_deploys(cloud: c.Cloud, service: str) -> None:
    """`before` steps, the workloads (ready as `helm --wait` needs them), `after` steps, then both probes."""
    _run_steps(cloud, service, "before")
    pods = cloud.start_workloads(service)
    # helm --wait: the release is applied only once its pods are Ready; the `after` steps follow.
    known = service in c.KNOWN_NOT_READY_BEFORE_AFTER_STEPS
    for pod in pods:
        ready = cloud.wait_ready(pod, timeout=20 if known else c.READY_TIMEOUT)
        record(service, f"{pod.workload} ready before after-steps", "yes" if ready.ok else "NO")
        if not known:
            assert ready.ok, f"{pod.workload} never became Ready: {_clean(ready.detail)}"
    _run_steps(cloud, service, "after")
    for pod in pods:
        ready = cloud.wait_ready(pod, timeout=c.READY_TIMEOUT)
        assert ready.ok, f"{pod.workload} is not Ready: {_clean(ready.detail)}"
        for kind in ("readinessProbe", "livenessProbe"):
            if kind in pod.container:
                result = cloud.probe(pod, kind)
                record(service, f"{pod.workload} {kind}", "ok" if result.ok else "FAILED")
                assert result.ok, f"{pod.workload} {kind}: {_clean(result.detail)}"


def _ok(cloud: c.Cloud, service: str, what: str, *args: str) -> str:
    result = cloud.client(*args)
    record(service, what, "ok" if result.returncode == 0 else "FAILED")
    assert result.returncode == 0, f"openstack {' '.join(args)}:\n{_clean(result.stdout + result.stderr)}"
    return result.stdout


def test_identity_workflow(cloud: c.Cloud) -> None:
    token = json.loads(_ok(cloud, "keystone", "token issue", "token", "issue", "-f", "json"))
    assert token["id"] and token["project_id"]
    catalog = json.loads(_ok(cloud, "keystone", "catalog list", "catalog", "list", "-f", "json"))
    types = {entry["Type"] for entry in catalog}
    assert {"identity", "image", "placement", "compute", "network", "volumev3"} <= types, types
    for entry in catalog:
        interfaces = {e["interface"] for e in entry["Endpoints"]}
        assert interfaces == {"public", "internal", "admin"}, (entry["Name"], interfaces)


def test_image_workflow(cloud: c.Cloud) -> None:
    name = "tier-image"
    created = json.loads(_ok(cloud, "glance", "image create", "image", "create", "--disk-format", "raw",
                             "--container-format", "bare", "--file", "/etc/hostname", "-f", "json", name))
    assert created["status"] == "active", created
    listed = json.loads(_ok(cloud, "glance", "image list", "image", "list", "-f", "json"))
    assert name in {i["Name"] for i in listed}
    _ok(cloud, "glance", "image delete", "image", "delete", name)
    listed = json.loads(_ok(cloud, "glance", "image list", "image", "list", "-f", "json"))
    assert name not in {i["Name"] for i in listed}


def test_placement_workflow(cloud: c.Cloud) -> None:
    name = "tier-provider"
    created = json.loads(_ok(cloud, "placement", "resource provider create", "resource", "provider", "create",
                             "-f", "json", name))
    listed = json.loads(_ok(cloud, "placement", "resource provider list", "resource", "provider", "list", "-f", "json"))
    assert created["uuid"] in {p["uuid"] for p in listed}
    _ok(cloud, "placement", "resource provider delete", "resource", "provider", "delete", created["uuid"])


@pytest.mark.timeout(900)
def test_compute_workflow(cloud: c.Cloud) -> None:
    """A hypervisor on nova's fake virt driver joins (the scheduler's periodic discovery maps it), a server boots
    and is deleted. Without neutron in the tier the server has no network (`--nic none`, microversion >= 2.37)."""
    compute = cloud.start_compute()

    c.poll("nova-compute never reported up", lambda: cloud.nova_compute_up(compute, _clean), 180)
    record("nova", "nova-compute (fake driver) up", "ok")

    # The demo's scheduler discovers new hosts every 30 s: the host gets its cell mapping without any step.
    def mapped() -> bool:
        return c.COMPUTE_HOST in cloud.sql("SELECT host FROM nova_api.host_mappings").split()

    interval = cloud.rendered["nova"].comp.values["conf"]["nova"]["scheduler"]["discover_hosts_in_cells_interval"]
    c.poll(f"the scheduler's periodic discovery (every {interval} s) never mapped {c.COMPUTE_HOST}", mapped,
           interval * 3 + 30)
    record("nova", "periodic host discovery", "ok")
    # The discover-hosts step (`always`: every apply) finds nothing left to do, and says so without failing.
    step = next(s for s in cloud.rendered["nova"].comp.bootstrap if s["name"] == "discover-hosts")
    run = cloud.run_step("nova", step)
    record("nova", "step discover-hosts (again, with a compute host)", "ok" if run.returncode == 0 else "FAILED")
    assert run.returncode == 0, _clean(run.output)

    hypervisors = json.loads(_ok(cloud, "nova", "hypervisor list", "hypervisor", "list", "-f", "json"))
    assert any(h["Hypervisor Hostname"] for h in hypervisors), hypervisors
    _ok(cloud, "nova", "flavor create", "flavor", "create", "--ram", "128", "--disk", "1", "--vcpus", "1",
        "tier-flavor")
    _ok(cloud, "glance", "image create (for a server)", "image", "create", "--disk-format", "raw",
        "--container-format", "bare", "--file", "/etc/hostname", "tier-server-image")
    server = json.loads(_ok(cloud, "nova", "server create --wait", "--os-compute-api-version", "2.37", "server",
                            "create", "--flavor", "tier-flavor", "--image", "tier-server-image", "--nic", "none",
                            "--wait", "-f", "json", "tier-server"))
    assert server["status"] == "ACTIVE", server
    assert server["OS-EXT-SRV-ATTR:host"] == c.COMPUTE_HOST, server
    listed = json.loads(_ok(cloud, "nova", "server list", "server", "list", "-f", "json"))
    assert {"tier-server"} <= {s["Name"] for s in listed}
    _ok(cloud, "nova", "server delete --wait", "server", "delete", "--wait", "tier-server")
    listed = json.loads(_ok(cloud, "nova", "server list", "server", "list", "-f", "json"))
    assert "tier-server" not in {s["Name"] for s in listed}
    _ok(cloud, "nova", "flavor delete", "flavor", "delete", "tier-flavor")
    _ok(cloud, "glance", "image delete", "image", "delete", "tier-server-image")


def test_network_workflow(cloud: c.Cloud) -> None:
    """A project network (the demo's ML2: vxlan project networks, openvswitch + l2population), a subnet and an
    unbound port are created and deleted; nothing needs an agent until a port is bound to a host."""
    network = json.loads(_ok(cloud, "neutron", "network create", "network", "create", "-f", "json", "tier-net"))
    assert network["provider:network_type"] == "vxlan", network
    subnet = json.loads(_ok(cloud, "neutron", "subnet create", "subnet", "create", "--network", "tier-net",
                            "--subnet-range", "192.0.2.0/24", "-f", "json", "tier-subnet"))
    assert subnet["cidr"] == "192.0.2.0/24", subnet
    port = json.loads(_ok(cloud, "neutron", "port create", "port", "create", "--network", "tier-net", "-f", "json",
                          "tier-port"))
    assert port["fixed_ips"] and port["fixed_ips"][0]["subnet_id"] == subnet["id"], port
    ports = json.loads(_ok(cloud, "neutron", "port list", "port", "list", "--network", "tier-net", "-f", "json"))
    assert port["id"] in {p["ID"] for p in ports}
    _ok(cloud, "neutron", "port delete", "port", "delete", port["id"])
    # Bound to a host, the port fails to bind: openvswitch binds only where its agent reports, and no agent (no
    # dataplane) runs here. This is why the tier's servers boot without a network.
    bound = json.loads(_ok(cloud, "neutron", "port create --host (binding)", "port", "create", "--network",
                           "tier-net", "--host", c.COMPUTE_HOST, "-f", "json", "tier-bound-port"))
    record("neutron", "port binding without an L2 agent", bound["binding_vif_type"])
    assert bound["binding_vif_type"] == "binding_failed", bound
    _ok(cloud, "neutron", "port delete (bound)", "port", "delete", bound["id"])
    _ok(cloud, "neutron", "subnet delete", "subnet", "delete", "tier-subnet")
    _ok(cloud, "neutron", "network delete", "network", "delete", "tier-net")
    listed = json.loads(_ok(cloud, "neutron", "network list", "network", "list", "-f", "json"))
    assert "tier-net" not in {n["Name"] for n in listed}


@pytest.mark.timeout(600)
def test_volume_workflow(cloud: c.Cloud) -> None:
    """The chart's cinder-volume (the demo's backend: cinder's fake driver) is up under its backend host; a volume
    is created (available) and deleted."""
    volume_service = cloud.start_volume()
    hosts = cloud.volume_hosts()

    def service_up() -> bool:
        out = cloud.client("volume", "service", "list", "--service", "cinder-volume", "-f", "json")
        assert volume_service.popen.poll() is None, f"cinder-volume exited:\n{_clean(volume_service.tail())}"
        return out.returncode == 0 and hosts <= {s["Host"] for s in json.loads(out.stdout) if s["State"] == "up"}

    c.poll(f"cinder-volume never reported {sorted(hosts)} up", service_up, 180)
    record("cinder", "cinder-volume (chart workload, fake driver) up", "ok")
    created = json.loads(_ok(cloud, "cinder", "volume create", "volume", "create", "--size", "1", "-f", "json",
                             "tier-volume"))

    def status() -> str:
        out = cloud.client("volume", "show", "-f", "json", created["id"])
        state = json.loads(out.stdout)["status"] if out.returncode == 0 else ""
        return state if state not in ("creating", "") else ""

    assert c.poll("the volume never left `creating`", status, 120) == "available", _clean(volume_service.tail())
    record("cinder", "volume available", "ok")
    _ok(cloud, "cinder", "volume delete", "volume", "delete", created["id"])

    def gone() -> bool:
        out = cloud.client("volume", "list", "-f", "json")
        return out.returncode == 0 and created["id"] not in {v["ID"] for v in json.loads(out.stdout)}

    c.poll("the volume was never deleted", gone, 120)
    record("cinder", "volume deleted", "ok")
