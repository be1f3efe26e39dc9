"""docs/install.md stays true: its chart values render with the chart, its DM_* names are settings the service reads."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from deploy_manager.config import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "install.md").read_text()
CHART = ROOT / "charts" / "deploy-manager"
HELM = str(ROOT / ".tools" / "bin" / "helm")


def test_every_dm_name_in_the_guide_is_a_setting() -> None:
    fields = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    names = set(re.findall(r"\bDM_[A-Z0-9_]+", DOC))
    assert names and {n for n in names if n.removesuffix("_FILE") not in fields} == set()


def test_the_guides_chart_values_render(tmp_path: Path) -> None:
    top = set(yaml.safe_load((CHART / "values.yaml").read_text()))
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", DOC, re.S)]
    chart_blocks = [b for b in blocks if isinstance(b, dict) and set(b) <= top]
    assert len(chart_blocks) >= 2  # the values file and the namespaced RBAC example
    for i, block in enumerate(chart_blocks):
        if block.get("image", {}).get("digest") == "sha256:…":
            block["image"]["digest"] = "sha256:" + "0" * 64  # the guide's placeholder for step 1's digest
        values = tmp_path / f"values{i}.yaml"
        values.write_text(yaml.safe_dump(block))
        result = subprocess.run(
            [HELM, "template", "deploy-manager", str(CHART), "-n", "deploy-manager", "-f", str(values),
             "--set", "config.repoUrl=https://ghe.example.com/cloud/openstack-deploy.git",
             "--set", "config.cluster=prod-east-1"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert result.returncode == 0, f"{block}: {result.stderr}"
