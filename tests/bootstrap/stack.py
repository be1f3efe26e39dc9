"""The values repo the bootstrap tests deploy: the project's own demo cluster.

The real `charts/openstack/`, `values/` and `bootstrap/` of this checkout are copied into a fresh git repo.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deploy_manager.bootstrap.engine import BootstrapEngine
from deploy_manager.helm.runner import HelmRunner
from deploy_manager.kube.client import KubeClient
from deploy_manager.pipeline import Pipeline
from deploy_manager.store.sqlite import RunStore
from kubesim.testing import RunningSandbox
from tests.corelib import commit, init_repo

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = "demo"


def build_repo(dest: Path) -> Path:
    """A git repo with the demo cluster; returns its path."""
    repo = init_repo(dest)
    for part in ("charts", "values", "bootstrap"):
        shutil.copytree(ROOT / part, repo / part)
    commit(repo, "the demo cluster")
    return repo


def read_cluster(repo: Path) -> dict[str, Any]:
    data = yaml.safe_load((repo / "values" / CLUSTER / "cluster.yaml").read_text())
    assert isinstance(data, dict)
    return data


def edit_values(repo: Path, component: str, edit: Any) -> str:
    """Apply `edit(values)` to values/demo/<component>.yaml and commit; returns the commit sha."""
    path = repo / "values" / CLUSTER / f"{component}.yaml"
    values = yaml.safe_load(path.read_text()) or {}
    edit(values)
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return commit(repo, f"edit {component}")


def declared_steps(repo: Path) -> dict[str, list[tuple[str, str]]]:
    """component -> [(step, when)] in declared order."""
    out: dict[str, list[tuple[str, str]]] = {}
    for name, comp in read_cluster(repo)["components"].items():
        out[name] = [(s["name"], s.get("when", "before")) for s in comp.get("bootstrap") or []]
    return out


class StoreEvents:
    """Subscriber to the sandbox's store: every event as (resourceVersion, type, group/resource, object), in commit
    (resourceVersion) order; called from the store's writers, so behind a lock."""

    def __init__(self) -> None:
        self.events: list[tuple[int, str, tuple[str, str], dict[str, Any]]] = []
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        with self._lock:
            self.events.append((event.rv, event.type, event.gr, event.obj))


@dataclass
class Deployer:
    """The demo cluster's repo and the real pipeline with the bootstrap engine that deploys it on the sandbox."""

    repo: Path
    helm: HelmRunner
    kube: KubeClient
    store: RunStore
    pipeline: Pipeline


@contextlib.contextmanager
def deployer(
    sandbox: RunningSandbox, helm_bin: Path, tmp_path: Path, recorder: Callable[[Any], None]
) -> Iterator[Deployer]:
    """`recorder` subscribes to the sandbox's store before anything is written; the repo is in `tmp_path`/repo,
    the run database in `tmp_path`/state."""
    sandbox.state.store.subscribe(recorder)
    repo = build_repo(tmp_path / "repo")
    helm = HelmRunner(str(helm_bin), kubeconfig=sandbox.kubeconfig)
    kube = KubeClient(kubeconfig=sandbox.kubeconfig)
    store = RunStore(tmp_path / "state" / "deploy-manager.db")
    engine = BootstrapEngine(helm=helm, kube=kube, store=store)
    pipeline = Pipeline(helm=helm, kube=kube, store=store, hook=engine, cache_dir=tmp_path / "charts")
    yield Deployer(repo, helm, kube, store, pipeline)
    pipeline.store.close()  # the one it has at the end: the lost-database test swaps it
    kube.close()
