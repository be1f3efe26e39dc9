"""horizon from the demo cluster's render: its pod started as the kubelet would (command, env with the pod's IP from
the downward API, the `horizon-etc` files, the static emptyDir), its probes sent as the kubelet sends them, and the
login page served through the Service's name.

horizon needs no bootstrap step and no keystone to serve its login page (a login would), so this runs on the
tier's infrastructure alone (memcached for its sessions).
"""

from __future__ import annotations

import json
import re

import httpx
import pytest

from . import cloud as c
from .conftest import record

pytestmark = pytest.mark.openstack

# collectstatic copies every XStatic package into the emptyDir, then the first page compiles horizon's SCSS
# (django-compressor, offline compression is off): minutes on a busy machine.
READY_TIMEOUT = 420.0
SERVICE_URL = "http://horizon.openstack.svc.cluster.local"
# GET the login page and the stylesheet it links; print [status, body, set-cookie, stylesheet status].
LOGIN_PAGE = """
import json, re, sys, urllib.request
base = sys.argv[1]
with urllib.request.urlopen(base + "/auth/login/", timeout=60) as page:
    status, text, cookie = page.status, page.read().decode(), page.headers.get("Set-Cookie", "")
css = re.search(r'href="(/static/[^"]+[.]css)"', text)
css_status = 0
if css:
    with urllib.request.urlopen(base + css.group(1), timeout=60) as sheet:
        css_status = sheet.status
print(json.dumps([status, text, cookie, css_status]))
"""


def _code(detail: str) -> str:
    """`GET <url> -> <status> ...` of a probe result: the status."""
    match = re.search(r"-> (\d{3})", detail)
    return match.group(1) if match else detail[:80]


@pytest.mark.timeout(900)
def test_horizon_ready_probes_and_login_page(cloud: c.Cloud) -> None:
    pods = cloud.start_workloads("horizon")
    assert [p.workload for p in pods] == ["horizon"], [p.workload for p in pods]
    pod = pods[0]
    ready = cloud.wait_ready(pod, timeout=READY_TIMEOUT)
    record("horizon", "horizon ready", "yes" if ready.ok else "NO")
    assert ready.ok, f"horizon never became Ready: {ready.detail}"

    for kind in ("readinessProbe", "livenessProbe"):
        assert "httpGet" in pod.container[kind], pod.container[kind]
        result = cloud.probe(pod, kind)
        record("horizon", f"horizon {kind}", f"ok ({_code(result.detail)})" if result.ok else "FAILED")
        assert result.ok, f"horizon {kind}: {result.detail}"

    # The same request with a Host the settings do not allow is refused: the pod's own address (POD_IP, added to
    # ALLOWED_HOSTS by the rendered settings) is what makes the probes pass.
    port = c.port_number(pod.container, pod.container["readinessProbe"]["httpGet"]["port"])
    path = pod.container["readinessProbe"]["httpGet"].get("path", "/")

    def foreign_host() -> int:
        return httpx.get(f"http://{pod.ip}:{port}{path}", headers={"Host": f"10.0.0.99:{port}"},
                         timeout=30).status_code

    refused = cloud.netns.call(foreign_host) if cloud.netns else 0
    record("horizon", "probe with a foreign Host", str(refused))
    assert refused == 400, f"a Host outside ALLOWED_HOSTS answered {refused}"

    # From a pod: the name resolves through the pod network's /etc/hosts (the cluster DNS here), so the request runs
    # in that mount namespace.
    assert cloud.netns is not None
    run = cloud.netns.run(["python3", "-c", LOGIN_PAGE, SERVICE_URL], env=c.base_env(), timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    status, text, cookie, css_status = json.loads(run.stdout)
    ok = status == 200 and 'name="password"' in text and "csrftoken" in cookie and css_status == 200
    record("horizon", "login page via the Service name", "ok" if ok else f"FAILED ({status}, css {css_status})")
    assert status == 200, f"GET {SERVICE_URL}/auth/login/ -> {status}\n{text[:2000]}\n{pod.proc.tail()}"
    assert 'name="password"' in text, text[:2000]
    assert "csrftoken" in cookie, cookie
    # The page's compressed stylesheet is served from the static emptyDir (collectstatic + uwsgi's static-map).
    assert css_status == 200, f"the login page's stylesheet -> {css_status}"
