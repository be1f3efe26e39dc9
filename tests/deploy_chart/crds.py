"""The Prometheus Operator's CRD schemas (ServiceMonitor, PrometheusRule), for validating what the chart renders.

They come from the operator's own Go module, `github.com/prometheus-operator/prometheus-operator` (its
`example/prometheus-operator-crd/` holds the generated CRDs), downloaded once with `go mod download` from the
Go module proxy. The sum database is not consulted (it may be unreachable); instead the module's `h1:` hash is
pinned here and checked, as a go.sum line would be. The two CRD files are kept in
`~/.cache/deploy-manager/prometheus-operator/<version>-<hash prefix>/`, so a fresh clone reuses them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

MODULE = "github.com/prometheus-operator/prometheus-operator"
VERSION = "v0.86.1"
ZIPHASH = "h1:pHUuiRErcFb3nFDox7RxoxpEN0FyT24GtYOkr2GBu04="
FILES = {
    "ServiceMonitor": "monitoring.coreos.com_servicemonitors.yaml",
    "PrometheusRule": "monitoring.coreos.com_prometheusrules.yaml",
}
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "deploy-manager" / "prometheus-operator"


class CrdsUnavailable(RuntimeError):
    pass


def _download(dest: Path) -> None:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise CrdsUnavailable("Go is not installed: the CRDs come from the operator's Go module")
    with tempfile.TemporaryDirectory(prefix="dm-gomod-") as tmp:
        env = dict(os.environ, GOMODCACHE=tmp, GOFLAGS="-modcacherw", GOSUMDB="off", GOTOOLCHAIN="local")
        result = subprocess.run(
            [go, "mod", "download", "-json", f"{MODULE}@{VERSION}"],
            capture_output=True, text=True, env=env, cwd=tmp, timeout=600,
        )
        info = json.loads(result.stdout or "{}")
        if result.returncode != 0 or info.get("Error"):
            raise CrdsUnavailable(f"go mod download {MODULE}@{VERSION}: {info.get('Error') or result.stderr[-500:]}")
        if info.get("Sum") != ZIPHASH:  # what go.sum would check
            raise CrdsUnavailable(f"{MODULE}@{VERSION} has hash {info.get('Sum')}, expected {ZIPHASH}")
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=dest.parent))
        for name in FILES.values():
            shutil.copy(Path(info["Dir"]) / "example" / "prometheus-operator-crd" / name, staging / name)
        (staging / "SUM").write_text(ZIPHASH + "\n")
        staging.rename(dest)  # atomic: a half-written cache never counts


def crd_dir() -> Path:
    dest = CACHE / f"{VERSION}-{ZIPHASH[3:11].replace('/', '_')}"
    if not (dest / "SUM").is_file() or (dest / "SUM").read_text().strip() != ZIPHASH:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(dest, ignore_errors=True)
        _download(dest)
    return dest


def strict(node: Any) -> Any:
    """Unknown fields are errors (as `kubectl --validate=strict` makes them), except where the CRD keeps them."""
    if isinstance(node, dict):
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        for value in node.values():
            strict(value)
    elif isinstance(node, list):
        for value in node:
            strict(value)
    return node


def crd_schema(kind: str) -> dict[str, Any]:
    """The strict openAPIV3Schema of the served version (v1) of `kind`."""
    crd = yaml.safe_load((crd_dir() / FILES[kind]).read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema: dict[str, Any] = strict(version["schema"]["openAPIV3Schema"])
    return schema
