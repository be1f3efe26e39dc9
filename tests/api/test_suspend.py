"""`POST /suspend`, `POST /resume`, `GET /suspend` on the real service over HTTP (issue 13).

Nothing stubbed: `create_app(settings)` with the real Pipeline, helm against the sandbox, a `file://` git
remote, the Lease and the suspend ConfigMap on the sandbox. Each component lives in its own namespace, so
"nothing written to it" is: no object in its namespace changed. The suspension must survive a service
restart with its database deleted (it lives in the cluster, not in the database).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy_manager.api import create_app
from deploy_manager.config import Settings
from kubesim.testing import KubeCLI, RunningSandbox
from tests.commands.test_freeze_cmds import objects
from tests.corelib import commit, init_repo, write_chart, write_cluster, write_values
from tests.servicelib import READ_TOKEN, WRITE_TOKEN, LiveServer

pytestmark = [pytest.mark.helm, pytest.mark.slow]

COMPONENTS = ("db", "web")


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    root = init_repo(tmp_path / "remote")
    for name in COMPONENTS:
        write_chart(root, f"charts/{name}")
        write_values(root, "dev", name, {"conf": {"n": 0}})
    spec = {
        "namespace": "sv-db",
        "components": {n: {"chart": f"charts/{n}", "namespace": f"sv-{n}"} for n in COMPONENTS},
    }
    write_cluster(root, "dev", spec)
    commit(root, "db and web")
    return root


def change_all(remote: Path, n: int) -> str:
    for name in COMPONENTS:
        write_values(remote, "dev", name, {"conf": {"n": n}})
    return commit(remote, f"n={n}")


@pytest.fixture
def settings(tmp_path: Path, sandbox: RunningSandbox, helm_bin: Path, remote: Path) -> Settings:
    return Settings(
        repo_url=f"file://{remote}",
        cluster="dev",
        state_dir=tmp_path / "state",
        kubeconfig=Path(sandbox.kubeconfig),
        helm_bin=str(helm_bin),
        poll_interval_seconds=0,
        observe_interval_seconds=0,
        read_tokens=READ_TOKEN,
        write_tokens=WRITE_TOKEN,
        lease_namespace="default",
        lease_duration_seconds=5,
        lease_renew_seconds=1,
        identity="pod-0_suspend",
        retry_attempts=0,
    )


class Service:
    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        self.server = LiveServer(self.app)
        self.queue = self.app.state.dm.queue

    def __enter__(self) -> Service:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)

    def client(self, token: str = WRITE_TOKEN) -> httpx.Client:
        return self.server.client(token)

    def releases(self) -> dict[str, dict[str, Any]]:
        with self.client(READ_TOKEN) as c:
            return {r["component"]: r for r in c.get("/releases").json()}

    def run(self, c: httpx.Client) -> dict[str, Any]:
        answer = c.post("/runs")
        assert answer.status_code == 202, answer.text
        assert self.queue.wait_idle(120)
        return dict(c.get(f"/runs/{answer.json()['run_id']}").json())


def test_suspend_over_http_survives_a_restart_with_the_database_deleted(
    settings: Settings, remote: Path, kube_cli: KubeCLI
) -> None:
    with Service(settings) as svc:
        assert svc.queue.wait_idle(120)  # the start-up run installs both
        assert {r["revision"] for r in svc.releases().values()} == {1}
        with svc.client(READ_TOKEN) as c:
            assert c.post("/suspend", json={"component": "db"}).status_code == 403  # a write endpoint
        with svc.client() as c:
            for bad in ({"component": "Bad_Name"}, {"component": "db", "by": "x"}, {"reason": "x" * 2000}):
                assert c.post("/suspend", json=bad).status_code == 422, bad
            answer = c.post("/suspend", json={"component": "db", "reason": "incident 9"})
            assert answer.status_code == 200, answer.text
            assert answer.json()["suspension"]["reason"] == "incident 9"
            assert answer.json()["suspension"]["by"] == "api"
            found = c.get("/suspend").json()
            assert found["cluster"] is None and found["components"]["db"]["reason"] == "incident 9"

            db_before = objects(kube_cli, "sv-db")
            change_all(remote, 1)
            run = svc.run(c)
        assert run["status"] == "succeeded", run
        actions = {s["component"]: s["action"] for s in run["steps"]}
        assert actions == {"db": "none", "web": "upgrade"}
        assert objects(kube_cli, "sv-db") == db_before  # 0 writes for db while web deploys
        releases = svc.releases()
        assert releases["db"]["state"] == "suspended" and releases["db"]["revision"] == 1
        assert releases["db"]["commit"] == releases["db"]["deployed_commit"] != run["commit"]  # not at the new one
        assert releases["web"]["revision"] == 2
        with svc.client(READ_TOKEN) as c:
            page = c.get("/").text
        assert "<h2>Suspended</h2>" in page and "incident 9" in page

    shutil.rmtree(settings.state_dir)  # the database is gone; the suspension is in the cluster
    change_all(remote, 2)
    with Service(settings) as svc:
        assert svc.queue.wait_idle(120)  # the start-up run deploys web's change, not db's
        releases = svc.releases()
        assert releases["web"]["revision"] == 3
        assert releases["db"]["revision"] == 1 and releases["db"]["state"] == "suspended"
        assert objects(kube_cli, "sv-db") == db_before
        with svc.client() as c:
            answer = c.post("/resume", json={"component": "db"})
            assert answer.status_code == 200 and answer.json()["run_id"] is not None, answer.text
            assert svc.queue.wait_idle(120)
            assert c.get("/suspend").json()["components"] == {}
            again = c.post("/resume", json={"component": "db"}).json()
            assert again["suspension"] is None and "was not suspended" in again["message"]
        releases = svc.releases()
        assert releases["db"]["revision"] == 2 and releases["db"]["state"] == "in-sync"


def test_suspend_the_cluster_over_http_then_resume_deploys_what_waited(settings: Settings, remote: Path) -> None:
    with Service(settings) as svc:
        assert svc.queue.wait_idle(120)
        with svc.client() as c:
            assert c.post("/suspend").status_code == 200  # no body: the whole cluster
            change_all(remote, 1)
            run = svc.run(c)
            assert run["status"] == "succeeded" and {s["action"] for s in run["steps"]} == {"none"}
            assert {r["state"] for r in svc.releases().values()} == {"suspended"}
            answer = c.post("/resume", json={"component": None})
            assert answer.status_code == 200 and answer.json()["suspension"]["component"] is None
            assert svc.queue.wait_idle(120)
        assert {r["revision"] for r in svc.releases().values()} == {2}
