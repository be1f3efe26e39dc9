"""The service end to end: `create_app(settings)` with nothing stubbed — the real Pipeline, the real helm
binary, the Kubernetes API sandbox, a real git remote (`file://`) mirrored into the state dir, the Lease on
the sandbox — served by uvicorn on a free 127.0.0.1 port and driven over HTTP.

Each test works in its own namespace and Lease, so one sandbox serves the module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import itertools
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy_manager.api import create_app
from deploy_manager.config import Settings
from deploy_manager.service import RunQueue
from tests.corelib import (
    CONFIGMAP_TEMPLATE,
    DEPLOYMENT_TEMPLATE,
    commit,
    git,
    init_repo,
    write_chart,
    write_cluster,
    write_values,
)
from tests.servicelib import (
    READ_TOKEN,
    LiveServer,
    github_headers,
    push_payload,
    sandbox_settings,
    wait_for,
)

pytestmark = [pytest.mark.helm, pytest.mark.slow]

_ns = itertools.count()
# keystone also runs a Deployment (DEPLOYMENT_TEMPLATE), so a values change of it is a rollout that can be made to last.
COMPONENTS = {"rabbitmq": [], "memcached": [], "keystone": ["rabbitmq", "memcached"]}


@dataclasses.dataclass
class Remote:
    root: Path
    namespace: str

    def change(self, component: str, value: int) -> str:
        """Commit a values change of one component; returns the commit sha."""
        write_values(self.root, "dev", component, {"replicas": 1, "conf": {component: {"workers": value}}})
        return commit(self.root, f"{component} workers={value}")

    @property
    def head(self) -> str:
        return git(self.root, "rev-parse", "HEAD")


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    namespace = f"svc-{next(_ns)}-{int(time.time() * 1000) % 100000}"
    root = init_repo(tmp_path / "remote")
    components: dict[str, Any] = {}
    for name, needs in COMPONENTS.items():
        template = CONFIGMAP_TEMPLATE + (DEPLOYMENT_TEMPLATE if name == "keystone" else "")
        write_chart(root, f"charts/openstack/{name}", template=template)
        components[name] = {"chart": f"charts/openstack/{name}"} | ({"needs": needs} if needs else {})
        write_values(root, "dev", name, {"replicas": 1, "conf": {name: {"workers": 0}}})
    write_cluster(root, "dev", {"namespace": namespace, "components": components})
    commit(root, "initial")
    return Remote(root, namespace)


@dataclasses.dataclass
class Running:
    server: LiveServer
    settings: Settings
    queue: RunQueue

    def client(self, token: str | None = READ_TOKEN) -> httpx.Client:
        return self.server.client(token)

    def push(self, client: httpx.Client, sha: str) -> httpx.Response:
        body = push_payload(sha)
        return client.post("/hooks/github", content=body, headers=github_headers(body))

    def releases(self) -> dict[str, dict[str, Any]]:
        with self.client() as c:
            return {r["component"]: r for r in c.get("/releases").json()}


@pytest.fixture
def start(tmp_path: Path, sandbox_module: Any, helm_bin: Path, remote: Remote) -> Iterator[Callable[..., Running]]:
    with contextlib.ExitStack() as stack:
        count = itertools.count()

        def factory(**overrides: Any) -> Running:
            n = next(count)
            own = {
                "lease_name": f"dm-{remote.namespace}",
                "lease_duration_seconds": 5,
                "lease_renew_seconds": 1,
                "identity": f"pod-{n}_{remote.namespace}",
                "trigger_quiet_seconds": 2.0,
            }
            state, kubeconfig = tmp_path / f"state-{n}", Path(sandbox_module.kubeconfig)
            settings = sandbox_settings(remote.root, state, kubeconfig, str(helm_bin), **(own | overrides))
            app = create_app(settings)
            server = stack.enter_context(LiveServer(app))
            return Running(server, settings, app.state.dm.queue)

        yield factory


def test_a_signed_push_runs_once_and_releases_show_the_new_commit(
    start: Callable[..., Running], remote: Remote
) -> None:
    svc = start()
    assert svc.queue.wait_idle(60)  # the start-up run installs the initial commit
    assert {r["commit"] for r in svc.releases().values()} == {remote.head}
    sha = remote.change("keystone", 1)
    with svc.client() as c:
        answer = svc.push(c, sha)
        assert answer.status_code == 202 and answer.json()["status"] == "queued"
        run_id = answer.json()["run_id"]
        assert svc.queue.wait_idle(60)
        run = c.get(f"/runs/{run_id}").json()
    assert run["status"] == "succeeded" and run["commit"] == sha and run["trigger"] == "github"
    assert [(s["component"], s["action"]) for s in run["steps"] if s["action"] != "none"] == [("keystone", "upgrade")]
    releases = svc.releases()
    assert releases["keystone"]["commit"] == sha and releases["keystone"]["revision"] == 2
    assert releases["keystone"]["deployed_commit"] == sha
    assert releases["rabbitmq"]["commit"] == sha and releases["rabbitmq"]["deployed_commit"] != sha
    assert releases["keystone"]["last_run_id"] == run_id and releases["keystone"]["healthy"] is True
    assert releases["rabbitmq"]["revision"] == 1  # unchanged components are not touched
    assert releases["keystone"]["state"] == "in-sync"
    with svc.client() as c:
        metrics = c.get("/metrics").text
    upgrades = re.search(r'deploy_manager_helm_command_duration_seconds_count\{command="upgrade"\} (\S+)', metrics)
    assert upgrades is not None and float(upgrades.group(1)) >= 4  # 3 installs at start-up + 1 upgrade
    assert 'deploy_manager_releases{status="deployed"} 3.0' in metrics


def test_a_readme_only_push_moves_every_release_to_the_new_commit_but_not_deployed_commit(
    start: Callable[..., Running], remote: Remote
) -> None:
    svc = start()
    assert svc.queue.wait_idle(60)
    old = remote.head
    (remote.root / "README.md").write_text("docs only\n")
    sha = commit(remote.root, "README only")
    with svc.client() as c:
        answer = svc.push(c, sha)
        assert answer.status_code == 202 and answer.json()["status"] == "queued"
        assert svc.queue.wait_idle(60)
        run = c.get(f"/runs/{answer.json()['run_id']}").json()
    assert run["status"] == "succeeded" and {s["action"] for s in run["steps"]} == {"none"}
    releases = svc.releases()
    assert set(releases) == set(COMPONENTS)
    assert {r["commit"] for r in releases.values()} == {sha}  # in sync at the pushed commit
    assert {r["deployed_commit"] for r in releases.values()} == {old}  # helm last wrote them at the old one
    assert {r["revision"] for r in releases.values()} == {1}


def test_a_tampered_push_is_401_and_starts_nothing(start: Callable[..., Running], remote: Remote) -> None:
    svc = start()
    assert svc.queue.wait_idle(60)
    sha = remote.change("keystone", 1)
    body = push_payload(sha)
    headers = github_headers(body)
    with svc.client() as c:
        before = c.get("/runs").json()
        r = c.post("/hooks/github", content=body.replace(b"refs/heads/main", b"refs/heads/mai\\u006e"), headers=headers)
        assert r.status_code == 401
        time.sleep(0.5)
        assert c.get("/runs").json() == before
    assert svc.releases()["keystone"]["commit"] != sha


def test_a_push_storm_costs_at_most_two_runs_and_ends_on_the_newest_commit(
    start: Callable[..., Running], remote: Remote
) -> None:
    svc = start()
    assert svc.queue.wait_idle(60)
    with svc.client() as c:
        before = {r["id"] for r in c.get("/runs").json()}
        # The 200 commits first (git is the slow part, 37-54 s on a loaded machine), then their pushes back to back,
        # so the storm is short next to the run the first push starts, even on a busy machine.
        shas = [remote.change("keystone", i + 1) for i in range(200)]
        started = time.monotonic()
        codes = [svc.push(c, sha).status_code for sha in shas]
        storm = time.monotonic() - started
        assert svc.queue.wait_idle(120)
        runs = [r for r in c.get("/runs").json() if r["id"] not in before]
    print(f"200 pushes in {storm:.1f} s -> {len(runs)} run(s)")
    assert codes == [202] * 200  # no 5xx, nothing refused
    assert 1 <= len(runs) <= 2, runs
    assert all(r["status"] == "succeeded" for r in runs), runs
    assert runs[0]["commit"] == shas[-1]
    assert svc.releases()["keystone"]["commit"] == shas[-1]


def test_a_poll_picks_up_a_commit_without_a_webhook(start: Callable[..., Running], remote: Remote) -> None:
    svc = start(poll_interval_seconds=0.5, poll_jitter_seconds=0.1)
    assert svc.queue.wait_idle(60)
    sha = remote.change("memcached", 7)
    wait_for(lambda: svc.releases()["memcached"]["commit"] == sha, timeout=60, interval=0.2)
    with svc.client() as c:
        newest = c.get("/runs", params={"limit": 1}).json()[0]
    assert newest["trigger"] == "poll" and newest["commit"] == sha and newest["status"] == "succeeded"


@pytest.mark.kubesim_only("holds a run open with kubesim's readiness delay")
def test_two_instances_on_one_cluster_never_run_at_the_same_time(
    start: Callable[..., Running], remote: Remote, sandbox_module: Any
) -> None:
    sandbox_module.set_ready_delay(0.3)  # runs that take a while, so overlaps would show
    try:
        a, b = start(trigger_quiet_seconds=1.0), start(trigger_quiet_seconds=1.0)
        for svc in (a, b):
            assert svc.queue.wait_idle(120)
        for i in range(3):
            sha = remote.change("keystone", 100 + i)
            with a.client() as ca, b.client() as cb:
                assert a.push(ca, sha).status_code == 202
                assert b.push(cb, sha).status_code == 202
            time.sleep(1.2)  # past the quiet period: each instance starts its run
        for svc in (a, b):
            assert svc.queue.wait_idle(120)
        intervals = []
        for svc in (a, b):
            with svc.client() as c:
                for run in c.get("/runs").json():
                    assert run["status"] == "succeeded", run
                    started, finished = (dt.datetime.fromisoformat(run[k]) for k in ("started_at", "finished_at"))
                    intervals.append((started, finished, svc.settings.identity))
        for svc in (a, b):  # both instances ran (so they did contend for the Lease)
            assert sum(1 for *_, who in intervals if who == svc.settings.identity) >= 3
        intervals.sort()
        for (_, f1, who1), (s2, _, who2) in itertools.pairwise(intervals):
            assert f1 <= s2, f"{who1} ran until {f1} but {who2} started at {s2}"
        assert a.releases()["keystone"]["commit"] == remote.head
    finally:
        sandbox_module.set_ready_delay(0.05)


@pytest.mark.kubesim_only("holds a run open with kubesim's readiness delay")
def test_the_read_api_answers_correctly_under_load_during_a_run(
    start: Callable[..., Running], remote: Remote, sandbox_module: Any
) -> None:
    svc = start()
    assert svc.queue.wait_idle(60)
    deployed = svc.releases()
    sandbox_module.set_ready_delay(1.0)
    try:
        sha = remote.change("keystone", 42)
        with svc.client() as c:
            assert svc.push(c, sha).status_code == 202
        wait_for(lambda: svc.queue.running_run_id is not None, timeout=30, interval=0.01)
        stop = threading.Event()
        failures: list[str] = []
        answered = 0
        lock = threading.Lock()

        def reader() -> None:
            nonlocal answered
            with svc.client() as client:
                while not stop.is_set():
                    for path in ("/releases", "/runs?limit=5", "/releases/keystone"):
                        r = client.get(path)
                        if r.status_code != 200:
                            failures.append(f"{path}: {r.status_code}")
                            continue
                        body = r.json()
                        if path == "/releases" and {x["component"] for x in body} != set(deployed):
                            failures.append(f"/releases lists {body}")
                        with lock:
                            answered += 1

        with ThreadPoolExecutor(8) as pool:
            for _ in range(8):
                pool.submit(reader)
            running_seen = svc.queue.running_run_id is not None
            assert svc.queue.wait_idle(60)
            stop.set()
        assert running_seen and not failures and answered > 50
        with svc.client() as c:
            run = c.get("/runs", params={"limit": 1}).json()[0]
        assert run["status"] == "succeeded" and run["commit"] == sha
        assert svc.releases()["keystone"]["commit"] == sha
    finally:
        sandbox_module.set_ready_delay(0.05)


def hangable_keystone(remote: Remote, timeout: int) -> None:
    """keystone with helm timeout `timeout` and a rollout that never becomes ready while its values say
    `broken: "true"` (the sandbox's annotation on the pod template: a change of it is a rollout)."""
    components: dict[str, Any] = {}
    for name, needs in COMPONENTS.items():
        components[name] = {"chart": f"charts/openstack/{name}"} | ({"needs": needs} if needs else {})
    components["keystone"]["timeout"] = timeout
    annotation = '{kubesim.io/never-ready: {{ .Values.broken | default "false" | quote }}, values-hash:'
    template = DEPLOYMENT_TEMPLATE.replace("{values-hash:", annotation)
    assert template != DEPLOYMENT_TEMPLATE
    write_chart(remote.root, "charts/openstack/keystone", template=CONFIGMAP_TEMPLATE + template)
    write_cluster(remote.root, "dev", {"namespace": remote.namespace, "components": components})
    commit(remote.root, f"keystone timeout {timeout}s")


def push_keystone(svc: Running, remote: Remote, value: int, *, broken: bool) -> tuple[str, int]:
    write_values(remote.root, "dev", "keystone", {"replicas": 1, "broken": str(broken).lower(), "conf": {"w": value}})
    sha = commit(remote.root, f"keystone {value} broken={broken}")
    with svc.client() as c:
        answer = svc.push(c, sha)
    assert answer.status_code == 202 and answer.json()["status"] == "queued", answer.text
    return sha, int(answer.json()["run_id"])


def hang_keystone(svc: Running, remote: Remote, value: int) -> int:
    """Push a keystone change whose rollout never becomes ready; returns the run id once helm waits on it."""
    _, run_id = push_keystone(svc, remote, value, broken=True)
    wait_for(lambda: svc.queue._cancel is not None and "keystone" in svc.queue._cancel.in_helm(), timeout=60)
    time.sleep(0.5)  # inside helm's --wait
    return run_id


def test_a_fix_pushed_during_a_hanging_wait_supersedes_the_run_and_deploys_long_before_the_timeout(
    start: Callable[..., Running], remote: Remote, sandbox_module: Any
) -> None:
    hangable_keystone(remote, 300)
    svc = start()
    assert svc.queue.wait_idle(120)
    hanging = hang_keystone(svc, remote, 11)
    pushed = time.monotonic()
    fix, fix_run = push_keystone(svc, remote, 12, broken=False)
    assert svc.queue.wait_idle(120)
    took = time.monotonic() - pushed
    print(f"fix pushed during a hanging --wait -> fix deployed: {took:.1f}s (helm timeout 300 s)")
    assert took < 60  # helm's timeout is 300 s
    with svc.client() as c:
        old, new = c.get(f"/runs/{hanging}").json(), c.get(f"/runs/{fix_run}").json()
    assert old["status"] == "superseded" and fix[:12] in old["error"], old
    (step,) = [s for s in old["steps"] if s["component"] == "keystone" and s["action"] == "upgrade"]
    assert step["status"] == "failed" and "ended by deploy-manager" in step["error"]  # helm was ended
    assert "superseded" in [r["code"] for r in step["reason_details"]]
    assert new["status"] == "succeeded" and new["commit"] == fix
    assert new["started_at"] >= old["finished_at"]  # never two runs at once
    keystone = svc.releases()["keystone"]
    assert keystone["status"] == "deployed" and keystone["commit"] == fix


def test_with_supersede_off_a_hanging_run_is_left_to_finish(
    start: Callable[..., Running], remote: Remote, sandbox_module: Any
) -> None:
    hangable_keystone(remote, 8)
    svc = start(supersede=False)
    assert svc.queue.wait_idle(120)
    hanging = hang_keystone(svc, remote, 21)
    fix, fix_run = push_keystone(svc, remote, 22, broken=False)
    assert svc.queue.wait_idle(120)
    with svc.client() as c:
        old, new = c.get(f"/runs/{hanging}").json(), c.get(f"/runs/{fix_run}").json()
    # Its helm wait was not ended: helm's own timeout failed it.
    assert old["status"] == "failed" and "superseded" not in old["error"]
    (step,) = [s for s in old["steps"] if s["component"] == "keystone" and s["action"] == "upgrade"]
    assert step["status"] == "failed" and "ended by deploy-manager" not in step["error"]
    assert "superseded" not in [r["code"] for r in step["reason_details"]]
    assert new["status"] == "succeeded" and new["commit"] == fix and new["started_at"] >= old["finished_at"]
