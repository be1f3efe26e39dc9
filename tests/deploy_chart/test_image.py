"""The service image's inputs: the hash lock matches pyproject, the Dockerfile caches dependencies, pins its base.

(No Docker here: hadolint lints the Dockerfile in test_self_chart.py; these check what a build would use.)
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _locked() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of every pinned requirement in the lock."""
    out: dict[str, tuple[str, list[str]]] = {}
    name = ""
    for line in LOCK.read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line):
            name = canonicalize_name(m.group(1))
            out[name] = (m.group(2), [])
        elif "--hash=sha256:" in line and name:
            out[name][1].append(line.split("--hash=sha256:")[1].split()[0])
    return out


def test_the_lock_pins_every_runtime_dependency_with_hashes_and_no_sandbox() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = _locked()
    for requirement in map(Requirement, project["dependencies"]):
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} is not in requirements.lock: regenerate it (command at its top)"
        assert requirement.specifier.contains(locked[name][0], prereleases=True), f"{name} {locked[name][0]}"
    assert all(hashes and all(len(h) == 64 for h in hashes) for _, hashes in locked.values())
    sandbox = {canonicalize_name(Requirement(r).name) for r in project["optional-dependencies"]["sandbox"]}
    assert "kubernetes-validate" in sandbox and not sandbox & set(locked)
    assert {"setuptools", "wheel"} <= set(locked)  # the project itself is built from the lock, no isolation


def test_dockerfile_installs_dependencies_before_the_source_and_pins_the_base_by_digest() -> None:
    lines = [ln.strip() for ln in DOCKERFILE.splitlines()]
    lock_at = next(i for i, ln in enumerate(lines) if ln.startswith("COPY requirements.lock"))
    source_at = next(i for i, ln in enumerate(lines) if ln.startswith("COPY deploy_manager"))
    assert lock_at < source_at
    assert "--require-hashes" in DOCKERFILE
    assert not any(ln.startswith("COPY kubesim") for ln in lines)  # the sandbox stays out of the image
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, re.M)
    assert base is not None and re.search(r"@sha256:[0-9a-f]{64}$", base.group(1))
    assert all(ln.split()[1].startswith("${PYTHON_IMAGE}") for ln in lines if ln.startswith("FROM "))
    assert re.search(r'^ENTRYPOINT \["/usr/bin/tini", "--"', DOCKERFILE, re.M)
    assert "openssh-client" in DOCKERFILE


SANDBOX_ONLY = ("kubesim", "kubernetes_validate", "jsonschema", "jsonpatch")
WITHOUT_SANDBOX = f"""
import importlib, importlib.abc, pkgutil, sys
class NoSandbox(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {SANDBOX_ONLY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, NoSandbox())
import deploy_manager
for info in pkgutil.walk_packages(deploy_manager.__path__, "deploy_manager."):
    importlib.import_module(info.name)
from deploy_manager.cli import main
sys.argv = ["deploy-manager", "sandbox"]
main()
"""


def test_the_service_runs_without_the_sandbox_extra() -> None:
    """Every module of the service imports without kubesim and the `sandbox` extra, as in the image."""
    result = subprocess.run([sys.executable, "-c", WITHOUT_SANDBOX], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        "error: the sandbox is not installed (kubesim missing): pip install 'deploy-manager[sandbox]'"
    )
