"""The example clusters' workflow checks (values/_common/smoke.yaml, bootstrap/smoke/*.sh.j2): each renders
for every example cluster that deploys its component, is valid bash, names what it creates with a per-run
prefix and cleans up on exit; none prints a secret (issue 14). The tier runs them for real
(tests/openstack/test_smoke_scripts.py)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy_manager.desired.bootstrap import render_script
from tests.charts import layers

ROOT = Path(__file__).resolve().parents[2]
CHECKS = yaml.safe_load((ROOT / "values/_common/smoke.yaml").read_text())["checks"]
EXPECTED = {
    "token-issue": ["openstack token issue", "openstack catalog list"],
    "image-crud": ["openstack image create", "openstack image list", "openstack image delete"],
    "placement-providers": ["openstack resource provider list"],
    "network-crud": ["openstack network create", "openstack subnet create", "openstack port create", "port delete"],
    "server-boot": ["openstack server create", "--wait", "openstack server delete"],
    "volume-attach": ["openstack volume create", "server add volume", "server remove volume", "volume delete"],
}


def test_the_issue_asks_for_these_checks() -> None:
    assert sorted(c["name"] for c in CHECKS) == sorted(EXPECTED)


@pytest.mark.parametrize("cluster", ["demo", "dev", "prod-east-1", "prod-west-1"])
def test_checks_render_as_valid_bash_without_secrets(cluster: str) -> None:
    comps = {comp.name: comp for comp in layers.components(cluster)}
    rendered = 0
    for spec in CHECKS:
        comp = comps.get(spec["component"])
        if comp is None:
            continue  # the cluster does not deploy it: the loader leaves the check out
        script = render_script(
            (ROOT / spec["script"]).read_text(),
            file=spec["script"],
            values=comp.values,
            cluster=cluster,
            component=comp.name,
            release=comp.release,
            namespace=comp.namespace,
        )
        done = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True, check=False)
        assert done.returncode == 0, (spec["name"], done.stderr)
        for command in EXPECTED[spec["name"]]:
            assert command in script, (spec["name"], command)
        assert f'base="dm-smoke-{spec["name"]}"' in script and 'prefix="${base}-$(date +%s)-${RANDOM}"' in script
        if spec["name"] != "token-issue":  # it creates nothing
            assert re.search(r"^trap \w+ EXIT$", script, re.M), spec["name"]
        # Secrets come from the Job's env only, and are never printed or traced.
        assert "SECRET_KEYSTONE_ADMIN" in script and "set -x" not in script
        assert not re.search(r"(echo|printf)[^\n]*(OS_PASSWORD|SECRET_)", script), spec["name"]
        rendered += 1
    assert rendered >= 5
