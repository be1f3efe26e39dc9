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

Two backends give those fixtures a cluster: ``kubesim`` (the default) and ``kube``, the real control plane
of :mod:`kubecluster` (``make kube`` builds it), chosen by ``--cluster=kube`` or ``DM_TEST_CLUSTER=kube``.
On ``kube`` one control plane serves the session and is cleaned between tests (see
``kubecluster.testing``); ``sandbox.state.store`` reads and ``stats()`` work there, fault injection does
not. Every test that uses a cluster fixture is marked ``cluster`` (so ``-m cluster`` selects them); a test
that needs kubesim itself carries ``@pytest.mark.kubesim_only("why")`` and is skipped on ``kube``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubesim.testing import KubeCLI, RunningSandbox, start_sandbox

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("kubesim", "kube")
CLUSTER_FIXTURES = frozenset({"sandbox", "sandbox_module", "kube_cli", "kube_cli_module", "kube_backend"})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--cluster", choices=BACKENDS, default=None,
                     help="backend of the cluster fixtures: kubesim (default) or kube (real control plane); "
                          "default from $DM_TEST_CLUSTER")


def _backend(config: pytest.Config) -> str:
    backend = config.getoption("--cluster") or os.environ.get("DM_TEST_CLUSTER") or "kubesim"
    if backend not in BACKENDS:
        raise pytest.UsageError(f"DM_TEST_CLUSTER={backend!r}: expected one of {', '.join(BACKENDS)}")
    return backend


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: uses a cluster fixture (runs on either backend)")
    config.addinivalue_line("markers", "kubesim_only(reason): needs kubesim itself; skipped on the kube backend")


def pytest_report_header(config: pytest.Config) -> str:
    return f"cluster backend: {_backend(config)}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    on_kube = _backend(config) == "kube"
    for item in items:
        if CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.cluster)
        marker = item.get_closest_marker("kubesim_only")
        if marker is not None:
            if not marker.args:
                raise pytest.UsageError(f"{item.nodeid}: kubesim_only needs a reason")
            if on_kube:
                item.add_marker(pytest.mark.skip(reason=f"kubesim only: {marker.args[0]}"))


@pytest.fixture(scope="session")
def cluster_backend(pytestconfig: pytest.Config) -> str:
    return _backend(pytestconfig)


@pytest.fixture(scope="session")
def kube_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The real control plane, one per session (started on first use); ``kubecluster.testing.KubeBackend``."""
    from kubecluster.cluster import bin_dir, binaries_present, start_cluster
    from kubecluster.testing import KubeBackend

    if not binaries_present():
        pytest.fail(f"the real control plane's binaries are not in {bin_dir()}: run `make kube`")
    with start_cluster(tmp_path_factory.mktemp("kube"), audit_log=True) as cluster:
        backend = KubeBackend(cluster)
        try:
            yield backend
        finally:
            backend.close()


def _sandbox(request: pytest.FixtureRequest, directory: Path) -> Iterator[Any]:
    if _backend(request.config) == "kubesim":
        with start_sandbox(directory) as running:
            yield running
        return
    backend = request.getfixturevalue("kube_backend")
    try:
        yield backend.sandbox(directory)
    finally:
        backend.clean()


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
def sandbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningSandbox]:
    yield from _sandbox(request, tmp_path)


@pytest.fixture(scope="module")
def sandbox_module(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    yield from _sandbox(request, tmp_path_factory.mktemp("sandbox"))


@pytest.fixture
def kube_cli(sandbox: RunningSandbox, helm_bin: Path, kubectl_bin: Path, tmp_path: Path) -> KubeCLI:
    return KubeCLI(helm_bin, kubectl_bin, sandbox.kubeconfig, tmp_path / "home")


@pytest.fixture(scope="module")
def kube_cli_module(sandbox_module: RunningSandbox, helm_bin: Path, kubectl_bin: Path,
                    tmp_path_factory: pytest.TempPathFactory) -> KubeCLI:
    return KubeCLI(helm_bin, kubectl_bin, sandbox_module.kubeconfig, tmp_path_factory.mktemp("home"))
