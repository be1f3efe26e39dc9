"""A values repo with workflow checks (issue 14) for the smoke tests: the six-component cluster of
`corelib.simple_cluster` (rabbitmq, memcached -> keystone -> glance, placement -> nova) plus smoke.yaml."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deploy_manager.bootstrap.smoke import SmokeJobs
from deploy_manager.helm.runner import HelmRunner
from deploy_manager.kube.client import KubeClient
from deploy_manager.pipeline import Pipeline
from deploy_manager.source.git import GitSource
from deploy_manager.store.sqlite import RunStore
from tests.corelib import commit, init_repo, simple_cluster, write, write_values

_ns = itertools.count()

SCRIPT = """#!/bin/bash
# {{ component }} check in {{ namespace }} (release {{ release }}), cluster {{ cluster }}
set -euo pipefail
echo "checking {{ component }} at {{ values.conf[component].debug }}"
"""

CHECKS: list[dict[str, Any]] = [
    {"name": "token-issue", "component": "keystone", "gates": ["keystone"], "timeout": 30},
    {"name": "image-list", "component": "glance", "gates": ["glance"], "timeout": 30},
    {"name": "server-boot", "component": "nova", "gates": [], "timeout": 30},
]


@dataclass
class SmokeEnv:
    root: Path
    state: Path
    namespace: str
    sandbox: Any
    helm_bin: str
    cluster: str = "dev"

    @property
    def kubeconfig(self) -> Path:
        return Path(self.sandbox.kubeconfig)

    def pipeline(self, *, after_run: str = "changed", store: RunStore | None = None) -> Pipeline:
        kube = KubeClient(kubeconfig=self.kubeconfig)
        return Pipeline(
            helm=HelmRunner(self.helm_bin, kubeconfig=self.kubeconfig),
            kube=kube,
            store=store or RunStore.in_dir(self.state),
            cache_dir=self.state / "charts",
            smoke=SmokeJobs(kube),
            smoke_after_run=after_run,
        )

    def source(self) -> GitSource:
        return GitSource(str(self.root))

    def apply(self, **kwargs: Any) -> Any:
        return self.pipeline(**kwargs).apply(self.source(), self.cluster, "HEAD", trigger="test")

    def set_checks(self, checks: list[dict[str, Any]], message: str = "checks") -> str:
        write(self.root / "values/dev/smoke.yaml", yaml.safe_dump({"checks": checks}, sort_keys=False))
        return commit(self.root, message)

    def change(self, component: str, message: str = "change") -> str:
        path = self.root / "values/dev" / f"{component}.yaml"
        values = yaml.safe_load(path.read_text())
        values["conf"][component]["debug"] = not values["conf"][component]["debug"]
        path.write_text(yaml.safe_dump(values))
        return commit(self.root, message)


def build(tmp_path: Path, sandbox: Any, helm_bin: str, checks: list[dict[str, Any]] | None = None) -> SmokeEnv:
    namespace = f"smoke-{next(_ns)}"
    root = init_repo(tmp_path / "repo")
    simple_cluster(root, "dev", namespace=namespace)
    write_values(root, "_common", "_global", {"images": {"tags": {"openstack_client": "example/osc:1"}}})
    for check in CHECKS:
        write(root / "bootstrap/smoke" / f"{check['name']}.sh.j2", SCRIPT)
    env = SmokeEnv(root, tmp_path / "state", namespace, sandbox, str(helm_bin))
    env.set_checks(checks if checks is not None else CHECKS, "init")
    return env


def steps_of(run: Any) -> dict[tuple[str, str], Any]:
    return {(s.component, s.action): s for s in run.steps}
