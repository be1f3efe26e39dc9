"""Finding 2: YAML alias expansion is bounded in every YAML read from the repository (values layers,
cluster.yaml with its bootstrap steps, Chart.yaml) and in helm's rendered output: alias bombs of several shapes
and depths fail `file:line: invalid YAML: …` (CLI exit 2, the run failed, /plan 422) without the service's memory
growing, and nothing is written. The served process's peak RSS (VmHWM) is measured with and without a bomb."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from deploy_manager.bootstrap.etc import pick_etc_data
from deploy_manager.cli import app as cli
from deploy_manager.desired.yamlio import MAX_ALIAS_NODES, MAX_DEPTH, load_yaml
from deploy_manager.models.errors import ConfigError
from kubesim.testing import RunningSandbox
from tests.corelib import write, write_chart
from tests.hostile.conftest import Remote, Service, cluster_writes
from tests.servicelib import READ_TOKEN, WRITE_TOKEN


def laughs(depth: int, width: int = 9, *, mapping: bool = False) -> str:
    """The classic: each level holds `width` aliases of the level before; width**depth scalars once expanded."""
    lines = ['l0: &l0 "lol"']
    for i in range(1, depth + 1):
        if mapping:
            body = ", ".join(f"k{j}: *l{i - 1}" for j in range(width))
            lines.append(f"l{i}: &l{i} {{{body}}}")
        else:
            lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def long_string_fanout(chars: int = 200_000, copies: int = 100) -> str:
    return f"s: &s '{'x' * chars}'\nmany: [" + ", ".join(["*s"] * copies) + "]\n"


def wide(aliases: int = MAX_ALIAS_NODES // 5 + 1) -> str:
    return "b: &b {x: 1, y: 2}\nall: [" + ", ".join(["*b"] * aliases) + "]\n"


def nested(depth: int = MAX_DEPTH + 5) -> str:
    return "a: " + "[" * depth + "]" * depth + "\n"


SHAPES: dict[str, tuple[str, str]] = {
    # shape -> (text, what the error says)
    "list laughs, depth 9": (laughs(9), "excessive aliasing"),
    "list laughs, depth 6": (laughs(6), "excessive aliasing"),
    "mapping laughs, depth 7": (laughs(7, mapping=True), "excessive aliasing"),
    "wide laughs, 40 per level": (laughs(4, 40), "excessive aliasing"),
    "long string copied by aliases": (long_string_fanout(), "excessive aliasing"),
    "many aliases of a small map": (wide(), "excessive aliasing"),
    "alias inside its own anchor": ("a: &a [1, *a]\n", "refers to a node that contains it"),
    "nesting past the limit": (nested(), "nested deeper than"),
    "nesting far past the limit": (nested(5000), "nesting"),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_shape_is_refused_with_file_and_line(shape: str) -> None:
    text, words = SHAPES[shape]
    with pytest.raises(ConfigError) as err:
        load_yaml(text.encode(), "values/dev/app.yaml")
    message = str(err.value)
    assert message.startswith("values/dev/app.yaml:") and words in message and "\n" not in message
    assert err.value.line is not None and err.value.line >= 1


def test_the_error_names_the_line_of_the_alias_that_crossed_the_bound() -> None:
    text = laughs(9)
    with pytest.raises(ConfigError) as err:
        load_yaml(text, "f.yaml")
    anchor = re.search(r"excessive aliasing: \*(l\d)", str(err.value))
    assert anchor is not None and err.value.line is not None
    assert f"*{anchor.group(1)}" in text.splitlines()[err.value.line - 1]


def test_ordinary_anchors_still_load() -> None:
    text = "base: &base {cpu: 1, memory: 1Gi}\napi: {resources: *base}\nworker: {resources: *base}\nh: '*.x.org'\n"
    assert load_yaml(text, "f.yaml") == {
        "base": {"cpu": 1, "memory": "1Gi"},
        "api": {"resources": {"cpu": 1, "memory": "1Gi"}},
        "worker": {"resources": {"cpu": 1, "memory": "1Gi"}},
        "h": "*.x.org",
    }
    assert load_yaml(laughs(3), "f.yaml")["l3"][0][0] == ["lol"] * 9  # 729 nodes: well inside the bound


def test_helm_rendered_output_is_bounded_too() -> None:
    manifests = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: app-etc}\n" + laughs(9)
    with pytest.raises(ConfigError, match="excessive aliasing"):
        pick_etc_data(manifests, "app")


# -- through the service and the CLI ---------------------------------------------------------------------------
# place -> how to put a bomb there, and the file the error names
PLACES: dict[str, tuple[Callable[[Remote, str], None], str]] = {
    "component values layer": (lambda r, t: write(r.root / "values/dev/app.yaml", t), "values/dev/app.yaml"),
    "global values layer": (
        lambda r, t: write(r.root / "values/_common/_global.yaml", t),
        "values/_common/_global.yaml",
    ),
    "cluster.yaml (bootstrap steps)": (
        lambda r, t: write(
            r.root / "values/dev/cluster.yaml",
            yaml.safe_dump({"namespace": r.namespace, "components": {"app": {"chart": "charts/app"}}}) + t,
        ),
        "values/dev/cluster.yaml",
    ),
    "Chart.yaml": (
        lambda r, t: write(r.root / "charts/app/Chart.yaml", "apiVersion: v2\nname: app\nversion: 0.1.0\n" + t),
        "charts/app/Chart.yaml",
    ),
}


@pytest.mark.helm
@pytest.mark.slow
@pytest.mark.parametrize("place", list(PLACES))
def test_a_bomb_anywhere_in_the_repo_fails_the_run_plan_and_cli_and_writes_nothing(
    start: Callable[..., Service], remote: Remote, place: str, tmp_path: Path
) -> None:
    svc = start()
    put, file = PLACES[place]
    put(remote, laughs(9))
    sha = remote.commit(f"bomb in {place}")
    writes = svc.writes()
    assert svc.push(sha).status_code == 202
    assert svc.queue.wait_idle(60)
    run = svc.runs()[0]
    assert run["status"] == "failed" and run["error"].startswith(f"{file}:") and "excessive aliasing" in run["error"]
    with svc.client() as c:
        plan = c.get("/plan")
    assert plan.status_code == 422 and plan.json()["detail"].startswith(f"{file}:")
    assert svc.writes() == writes
    svc.assert_healthy()
    result = CliRunner().invoke(cli, svc.cli_args("plan", remote.root, tmp_path / "cli"))
    assert result.exit_code == 2 and result.stderr.startswith(f"error: {file}:"), result.output
    assert "excessive aliasing" in result.stderr and result.stderr.count("\n") == 1


# -- memory of the served process -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def vm_hwm_kib(pid: int) -> int:
    """Peak resident set size of a process (VmHWM in /proc/<pid>/status), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.fixture
def serve(
    tmp_path: Path, sandbox_module: RunningSandbox, helm_bin: Path
) -> Iterator[Callable[[Remote], tuple[str, int]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def launch(remote: Remote) -> tuple[str, int]:
        port = _free_port()
        n = len(procs)
        env = {
            **os.environ,
            "DM_REPO_URL": f"file://{remote.root}",
            "DM_CLUSTER": "dev",
            "DM_STATE_DIR": str(tmp_path / f"serve-{n}"),
            "DM_KUBECONFIG": str(sandbox_module.kubeconfig),
            "DM_HELM_BIN": str(helm_bin),
            "DM_HOST": "127.0.0.1",
            "DM_PORT": str(port),
            "DM_READ_TOKENS": READ_TOKEN,
            "DM_WRITE_TOKENS": WRITE_TOKEN,
            "DM_POLL_INTERVAL_SECONDS": "0",
            "DM_OBSERVE_INTERVAL_SECONDS": "0",
            "DM_TRIGGER_QUIET_SECONDS": "0",
            "DM_LEASE_NAMESPACE": "default",
            "DM_LEASE_NAME": f"dm-{remote.namespace}-{n}",
            "DM_SHUTDOWN_GRACE_SECONDS": "10",
        }
        proc = subprocess.Popen(
            [sys.executable, "-c", "from deploy_manager.cli import main; main()", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / f"serve-{n}.log", "wb"),  # noqa: SIM115 - closed with the process
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / f"serve-{n}.log").read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    return url, proc.pid
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.1)

    yield launch
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=60)


def _settle(url: str, runs: int) -> list[dict[str, object]]:
    """Wait until `runs` runs are recorded and none is queued or running."""
    deadline = time.monotonic() + 90
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {READ_TOKEN}"}, timeout=30) as c:
        while True:
            got = c.get("/runs").json()
            if len(got) >= runs and all(r["status"] not in ("queued", "running") for r in got):
                return got  # type: ignore[no-any-return]
            assert time.monotonic() < deadline, got
            time.sleep(0.2)


@pytest.mark.helm
@pytest.mark.slow
def test_peak_rss_of_the_service_stays_normal_with_a_bomb_at_the_branch_head(
    serve: Callable[[Remote], tuple[str, int]],
    remote: Remote,
    sandbox_module: RunningSandbox,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A normal start-up (installs the one component) sets the baseline.
    url, pid = serve(remote)
    assert _settle(url, 1)[0]["status"] == "succeeded"
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {READ_TOKEN}"}, timeout=60) as c:
        assert c.get("/plan").status_code == 200
    baseline = vm_hwm_kib(pid)

    # The 567-byte shape of the finding (nine levels of nine) at the branch head; a fresh pod starts on it.
    bomb = laughs(9)
    write(remote.root / "values/dev/app.yaml", bomb)
    write_chart(remote.root, "charts/other")
    remote.commit("billion laughs")
    writes = cluster_writes(sandbox_module)
    url, pid = serve(remote)
    runs = _settle(url, 1)  # the start-up re-plan fails and records a run saying why
    assert runs[0]["status"] == "failed" and "values/dev/app.yaml:" in str(runs[0]["error"])
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {WRITE_TOKEN}"}, timeout=60) as c:
        for _ in range(5):
            plan = c.get("/plan")
            assert plan.status_code == 422 and "excessive aliasing" in plan.json()["detail"]
        assert c.post("/runs").status_code == 202
    _settle(url, 2)
    peak = vm_hwm_kib(pid)
    with httpx.Client(base_url=url, timeout=10) as c:
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
    assert cluster_writes(sandbox_module) == writes
    with capsys.disabled():
        print(
            f"\nalias-bomb ({len(bomb)} bytes) peak RSS of the service: {peak / 1024:.1f} MiB"
            f" (normal start-up and plan: {baseline / 1024:.1f} MiB)"
        )
    assert peak < baseline + 40 * 1024, (peak, baseline)  # within its normal memory (the finding: 2.4 GB)
