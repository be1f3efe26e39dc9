"""The demo cluster's OpenStack, run for real from what the charts and bootstrap scripts render.

Per service, in the order the cluster's `needs` start them: every config file passes
`oslo-config-validator` for the service's option namespaces; every bootstrap step runs its rendered
script as its Job would (`before` steps, then the workloads, then `after` steps); the kubelet's
readiness and liveness probes pass; then the user workflow works against the running APIs.

Not yet here: neutron 2026.2 runs its API only under uwsgi (neutron.wsgi.api) next to neutron-rpc-server
and the periodic workers, so the chart's neutron-server options (bind_port, api_workers,
allow_overlapping_ips) no longer exist; cinder's option namespace cannot be loaded without the optional
googleapiclient. nova runs without nova-compute (no server boot yet) and without nova-novncproxy
(cloud.NOT_RUN).
"""

from __future__ import annotations

import json
import re
import subprocess
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


def test_image_tags_name_the_installed_release() -> None:
    """The images the charts deploy are the release the tier runs (and no tag floats)."""
    for comp in layers.components(c.CLUSTER):
        tags = (comp.values.get("images") or {}).get("tags") or {}
        for key, image in tags.items():
            if image.startswith("quay.io/airshipit/"):
                assert re.search(rf":{re.escape(c.RELEASE)}-", image), f"{comp.name}: images.tags.{key} {image}"
        assert (comp.values.get("images") or {}).get("pullPolicy", "IfNotPresent") in ("IfNotPresent", "Always")


# neutron and cinder are left out until their charts catch up (see the module docstring).
VALIDATED = sorted(key for key in NAMESPACES if key[0] in ("keystone", "glance", "placement", "nova"))


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
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    output = (result.stdout + result.stderr).strip()
    record(service, f"{file} validated", "ok" if result.returncode == 0 else "FAILED")
    assert result.returncode == 0, f"{service}/{file}:\n{output}\n--- file:\n{rendered[file].decode()}"


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
    assert {"identity", "image", "placement", "compute"} <= types, types
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
