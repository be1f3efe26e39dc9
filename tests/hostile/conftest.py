"""The service as an attacker meets it (issue 11): `create_app(settings)` with nothing stubbed (the real
Pipeline, helm binary and bootstrap engine), the Kubernetes API sandbox, a real git remote (`file://`) and
uvicorn on 127.0.0.1, with the service's JSON log captured. One module per class of hostile input; each test
checks what the cluster received (sandbox write counts) and that the service is still healthy afterwards.

Each test gets its own namespace and remote, so one sandbox serves a module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy_manager.api import create_app
from deploy_manager.config import Settings
from deploy_manager.logging_setup import configure_logging
from deploy_manager.service import RunQueue
from kubesim.testing import RunningSandbox
from tests.corelib import CONFIGMAP_TEMPLATE, commit, git, init_repo, write_chart, write_cluster, write_values
from tests.servicelib import (
    READ_TOKEN,
    LiveServer,
    github_headers,
    push_payload,
    sandbox_settings,
)

_ns = itertools.count()
LEASES = "leases.coordination.k8s.io"
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")


def cluster_writes(sandbox: RunningSandbox) -> int:
    """Mutating Kubernetes calls so far, the Lease's own renewals left out."""
    by_resource = sandbox.stats()["by_resource"]
    return sum(n for res, verbs in by_resource.items() if res != LEASES for v, n in verbs.items() if v in WRITE_VERBS)


@dataclasses.dataclass
class Remote:
    """The values repo the service watches: one component `app` (a ConfigMap holding its values)."""

    root: Path
    namespace: str

    def commit(self, message: str = "change") -> str:
        return commit(self.root, message)

    @property
    def head(self) -> str:
        return git(self.root, "rev-parse", "HEAD")

    def cluster(self, **app: Any) -> None:
        write_cluster(
            self.root, "dev", {"namespace": self.namespace, "components": {"app": {"chart": "charts/app", **app}}}
        )


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    namespace = f"hostile-{next(_ns)}-{int(time.time() * 1000) % 100000}"
    root = init_repo(tmp_path / "remote")
    write_chart(root, "charts/app", template=CONFIGMAP_TEMPLATE)
    write_values(root, "dev", "app", {"replicas": 1, "conf": {"app": {"workers": 0}}})
    rem = Remote(root, namespace)
    rem.cluster()
    rem.commit("initial")
    return rem


@dataclasses.dataclass
class Service:
    server: LiveServer
    settings: Settings
    queue: RunQueue
    sandbox: RunningSandbox
    log: io.StringIO

    def client(self, token: str | None = READ_TOKEN) -> httpx.Client:
        return self.server.client(token)

    def writes(self) -> int:
        return cluster_writes(self.sandbox)

    def runs(self) -> list[dict[str, Any]]:
        with self.client() as c:
            return c.get("/runs", params={"limit": 1000}).raise_for_status().json()  # type: ignore[no-any-return]

    def push(self, sha: str, *, delivery: str | None = None) -> httpx.Response:
        body = push_payload(sha)
        headers = github_headers(body)
        if delivery is not None:
            headers["X-GitHub-Delivery"] = delivery
        with self.client(None) as c:
            return c.post("/hooks/github", content=body, headers=headers)

    def cli_args(self, command: str, repo: Path, state_dir: Path) -> list[str]:
        """`deploy-manager <command>` on `repo`'s dev cluster, on this service's cluster with its own state dir."""
        return [
            command,
            "--repo",
            str(repo),
            "--cluster",
            "dev",
            "--kubeconfig",
            str(self.settings.kubeconfig),
            "--state-dir",
            str(state_dir),
        ]

    def assert_healthy(self) -> None:
        """The process answers, every dependency is ready, and the worker is not stuck."""
        with self.client(None) as c:
            assert c.get("/healthz").status_code == 200
            ready = c.get("/readyz")
            assert ready.status_code == 200, ready.text
        assert self.queue.wait_idle(60)


@pytest.fixture
def start(
    tmp_path: Path, sandbox_module: RunningSandbox, helm_bin: Path, remote: Remote
) -> Iterator[Callable[..., Service]]:
    """Start the real service on `remote` (waits for its start-up run); overrides go to Settings."""
    with contextlib.ExitStack() as stack:
        count = itertools.count()

        def factory(wait: bool = True, **overrides: Any) -> Service:
            n = next(count)
            own = {
                "lease_name": f"dm-{remote.namespace}-{n}",
                "identity": f"pod-{n}_{remote.namespace}",
                "trigger_quiet_seconds": 0,
            }
            state, kubeconfig = tmp_path / f"state-{n}", Path(sandbox_module.kubeconfig)
            settings = sandbox_settings(remote.root, state, kubeconfig, str(helm_bin), **(own | overrides))
            stream = io.StringIO()
            handler = configure_logging(settings, stream)
            stack.callback(logging.getLogger().removeHandler, handler)
            app = create_app(settings)
            server = stack.enter_context(LiveServer(app))
            svc = Service(server, settings, app.state.dm.queue, sandbox_module, stream)
            if wait:
                assert svc.queue.wait_idle(90)
            return svc

        yield factory
