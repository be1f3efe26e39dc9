"""Shared fixtures: a running Kubernetes API sandbox (kubesim) and the pinned helm/kubectl.

Stable names other test packages rely on:

- ``helm_bin`` / ``kubectl_bin`` (session): ``Path`` of the real binaries — ``$DM_HELM_BIN`` /
  ``$DM_KUBECTL_BIN`` if set, else ``.tools/bin/helm`` / ``.tools/bin/kubectl`` (``make tools``).
- ``sandbox`` (function scope, fresh state) and ``sandbox_module`` (module scope, shared by a
  test module): a :class:`kubesim.testing.RunningSandbox` on 127.0.0.1 with
    - ``.url`` (``http://127.0.0.1:PORT``) and ``.kubeconfig`` (``Path`` of a kubeconfig file),
    - ``.stats()`` -> ``{"requests", "writes", "by_verb", "by_resource", …}``, ``.reset_stats()``,
    - ``.inject_fault(type=…, …)`` / ``.clear_faults()`` (fault kinds: see ``kubesim.control``),
    - ``.set_ready_delay(seconds)`` (default 0.05 s before workloads are ready / Jobs finish),
    - ``.state``: the in-process ``kubesim.sim.Simulator`` (``.state.store`` for direct reads).
- ``kube_cli`` (function) / ``kube_cli_module`` (module): a :class:`kubesim.testing.KubeCLI`
  bound to ``sandbox`` / ``sandbox_module``: ``kube_cli.helm("install", …)``,
  ``kube_cli.kubectl("get", …, input=…)``; always passes ``--kubeconfig``, isolates helm/kubectl
  caches from ``$HOME``, raises ``AssertionError`` with both outputs on failure
  (``check=False`` to inspect a failing run).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubesim.testing import KubeCLI, RunningSandbox, start_sandbox

ROOT = Path(__file__).resolve().parents[1]


def _tool(env_var: str, name: str) -> Path:
    path = Path(os.environ.get(env_var) or ROOT / ".tools" / "bin" / name)
    if not path.is_file():
        pytest.fail(f"{name} not found at {path}: run `make tools` (or set ${env_var})")
    return path


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    return _tool("DM_HELM_BIN", "helm")


@pytest.fixture(scope="session")
def kubectl_bin() -> Path:
    return _tool("DM_KUBECTL_BIN", "kubectl")


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[RunningSandbox]:
    with start_sandbox(tmp_path) as running:
        yield running


@pytest.fixture(scope="module")
def sandbox_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with start_sandbox(tmp_path_factory.mktemp("sandbox")) as running:
        yield running


@pytest.fixture
def kube_cli(sandbox: RunningSandbox, helm_bin: Path, kubectl_bin: Path, tmp_path: Path) -> KubeCLI:
    return KubeCLI(helm_bin, kubectl_bin, sandbox.kubeconfig, tmp_path / "home")


@pytest.fixture(scope="module")
def kube_cli_module(sandbox_module: RunningSandbox, helm_bin: Path, kubectl_bin: Path,
                    tmp_path_factory: pytest.TempPathFactory) -> KubeCLI:
    return KubeCLI(helm_bin, kubectl_bin, sandbox_module.kubeconfig, tmp_path_factory.mktemp("home"))
