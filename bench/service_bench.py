"""Service benchmark: webhook -> first helm exec latency, /releases under a run, idle RSS.

    python -m bench.service_bench [--samples 25] [--readers 8] [--window 8] [--out bench/results/service.json]
                                  [--kubeconfig PATH]   # an API server that is already running

Three processes, as in production: the Kubernetes API sandbox (`deploy-manager sandbox`, unless
`--kubeconfig` names a running API server), the service (`deploy-manager serve`, configured only through
DM_* variables) and this client. The values repo is `bench.generate` (one cluster, 12 components) behind a
`file://` remote. helm is the pinned binary behind a two-line shim that logs the wall-clock time of every
exec, so "first helm exec" is measured at the exec itself, not inferred from our own logs.

1. Latency: on an idle service (previous run finished, trigger quiet period over), commit a values change,
   send the signed GitHub push, and take the time from sending to the first helm exec of that run.
2. /releases during a run: the sandbox's readiness delay makes a run last many seconds; while it runs,
   `--readers` keep-alive clients request /releases back to back for `--window` seconds.
3. Idle RSS of the service process (VmRSS from /proc) after start-up, and again after the load.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.generate import NEEDS, cluster_name, generate

ROOT = Path(__file__).resolve().parent.parent
REAL_HELM = os.environ.get("DM_HELM_BIN") or str(ROOT / ".tools/bin/helm")
DM = str(Path(sys.executable).parent / "deploy-manager")
SECRET = "bench-webhook-secret-0123456789"
READ_TOKEN = "bench-read-token-0123456789"
WRITE_TOKEN = "bench-write-token-0123456789"
CLUSTER = cluster_name(0)
COMPONENT = "horizon"  # a leaf: its change upgrades one release


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout.strip()


@contextlib.contextmanager
def sandbox(work: Path) -> Iterator[Path]:
    kubeconfig = work / "kubeconfig"
    proc = subprocess.Popen(
        [DM, "sandbox", "--port", "0", "--kubeconfig-out", str(kubeconfig), "--ready-delay", "0.05"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("sandbox ready"):
            raise RuntimeError(f"sandbox did not start: {line!r}")
        yield kubeconfig
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def api_url(kubeconfig: Path) -> str:
    data = yaml.safe_load(kubeconfig.read_text())
    return str(data["clusters"][0]["cluster"]["server"])


def set_ready_delay(kubeconfig: Path, seconds: float) -> None:
    httpx.put(f"{api_url(kubeconfig)}/_sandbox/config", json={"ready_delay": seconds}, timeout=10).raise_for_status()


def write_shim(work: Path) -> tuple[Path, Path]:
    log = work / "helm-execs.log"
    shim = work / "helm"
    shim.write_text(f'#!/bin/sh\nprintf "%s %s\\n" "$(date +%s.%N)" "$1" >> "{log}"\nexec "{REAL_HELM}" "$@"\n')
    shim.chmod(0o755)
    log.touch()
    return shim, log


def execs_after(log: Path, t0: float) -> list[tuple[float, str]]:
    out = []
    for line in log.read_text().splitlines():
        ts, _, cmd = line.partition(" ")
        if float(ts) >= t0:
            out.append((float(ts), cmd))
    return out


class Service:
    def __init__(self, work: Path, repo: Path, kubeconfig: Path, helm: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DM_")}
        env.update(
            DM_REPO_URL=f"file://{repo}",
            DM_CLUSTER=CLUSTER,
            DM_STATE_DIR=str(work / "state"),
            DM_KUBECONFIG=str(kubeconfig),
            DM_HELM_BIN=str(helm),
            DM_HOST="127.0.0.1",
            DM_PORT=str(self.port),
            DM_POLL_INTERVAL_SECONDS="0",
            DM_OBSERVE_INTERVAL_SECONDS="0",
            DM_GITHUB_WEBHOOK_SECRET=SECRET,
            DM_READ_TOKENS=READ_TOKEN,
            DM_WRITE_TOKENS=WRITE_TOKEN,
            DM_LEASE_NAMESPACE="default",
            DM_LOG_LEVEL="WARNING",
        )
        self.log = (work / "service.log").open("w")
        self.proc = subprocess.Popen([DM, "serve"], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {READ_TOKEN}"}, timeout=60)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if self.client.get("/readyz").status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError("service not ready")

    def wait_idle(self, timeout: float = 300) -> dict[str, Any]:
        """Until the newest run is finished; returns it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.client.get("/runs", params={"limit": 1}).json()
            if runs and runs[0]["status"] not in ("queued", "running"):
                return dict(runs[0])
            time.sleep(0.05)
        raise RuntimeError("run did not finish")

    def push(self, sha: str) -> httpx.Response:
        body = json.dumps({"ref": "refs/heads/main", "after": sha, "deleted": False}).encode()
        sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-GitHub-Event": "push", "X-Hub-Signature-256": sig}
        return self.client.post("/hooks/github", content=body, headers=headers)

    def stop(self) -> None:
        self.client.close()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        self.log.close()


def change(repo: Path, i: int, components: tuple[str, ...] = (COMPONENT,), rollout: bool = False) -> str:
    """Commit a values change of `components`; `rollout`: change the pod template too (a new rollout)."""
    for component in components:
        path = repo / "values" / CLUSTER / f"{component}.yaml"
        data = yaml.safe_load(path.read_text())
        data.setdefault("conf", {}).setdefault("DEFAULT", {})["bench_counter"] = i
        if rollout:
            data["port"] = 10000 + i % 50000
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    git(repo, "commit", "-qam", f"bench change {i}")
    return git(repo, "rev-parse", "HEAD")


def bench_latency(svc: Service, repo: Path, log: Path, samples: int, quiet: float) -> dict[str, Any]:
    latencies, first_cmds, run_seconds = [], set(), []
    for i in range(samples):
        sha = change(repo, i)
        time.sleep(quiet)  # idle: the previous trigger is older than the quiet period
        t0 = time.time()
        answer = svc.push(sha)
        assert answer.status_code == 202 and answer.json()["status"] == "queued", answer.text
        run = svc.wait_idle()
        assert run["status"] == "succeeded" and run["commit"] == sha, run
        execs = execs_after(log, t0)
        latencies.append((execs[0][0] - t0) * 1000)
        first_cmds.add(execs[0][1])
        run_seconds.append(time.time() - t0)
    return {
        "samples": samples,
        "p50_ms": round(pct(latencies, 50), 1),
        "p99_ms": round(pct(latencies, 99), 1),
        "min_ms": round(min(latencies), 1),
        "max_ms": round(max(latencies), 1),
        "first_helm_command": sorted(first_cmds),
        "run_seconds_p50": round(statistics.median(run_seconds), 2),
    }


def bench_releases(
    svc: Service, repo: Path, kubeconfig: Path, readers: int, window: float, rollout: bool = True
) -> dict[str, Any]:
    # Every component rolls out and each helm --wait takes ~2 s: 5 waves, a run longer than the window.
    set_ready_delay(kubeconfig, 2.0)
    try:
        sha = change(repo, int(time.time()), tuple(NEEDS), rollout=rollout)  # values never deployed before
        time.sleep(2.1)
        assert svc.push(sha).status_code == 202
        deadline = time.monotonic() + 30
        while svc.client.get("/runs", params={"limit": 1}).json()[0]["status"] != "running":
            if time.monotonic() > deadline:
                raise RuntimeError("the run did not start")
            time.sleep(0.02)
        result = hammer(svc, readers, window)
        result["run_in_progress_throughout"] = (
            svc.client.get("/runs", params={"limit": 1}).json()[0]["status"] == "running"
        )
        svc.wait_idle()
    finally:
        set_ready_delay(kubeconfig, 0.05)
    result["releases_listed"] = len(svc.client.get("/releases").json())
    result["rollout"] = rollout
    return result


def hammer(svc: Service, readers: int, window: float) -> dict[str, Any]:
    """`readers` keep-alive clients GET /releases back to back for `window` seconds."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def reader() -> None:
        mine: list[float] = []
        with httpx.Client(base_url=svc.url, headers={"Authorization": f"Bearer {READ_TOKEN}"}) as client:
            while not stop.is_set():
                t = time.perf_counter()
                r = client.get("/releases")
                mine.append((time.perf_counter() - t) * 1000)
                if r.status_code != 200 or not isinstance(r.json(), list):
                    errors.append(str(r.status_code))
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=reader) for _ in range(readers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(window)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return {
        "readers": readers,
        "window_s": window,
        "requests": len(latencies),
        "errors": len(errors),
        "throughput_rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(pct(latencies, 50), 2),
        "p99_ms": round(pct(latencies, 99), 2),
        "max_ms": round(max(latencies), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=25)
    parser.add_argument("--skip-latency", action="store_true", help="Only the /releases and RSS parts.")
    parser.add_argument(
        "--no-rollout",
        action="store_true",
        help="The run under load only changes config (no rollouts): back-to-back, CPU-bound helm upgrades.",
    )
    parser.add_argument("--readers", type=int, default=8)
    parser.add_argument("--window", type=float, default=8.0)
    parser.add_argument("--kubeconfig", type=Path, help="Use this running API server instead of a new sandbox.")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/service.json")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dm-service-bench-"))
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            # Other work on the machine shows up in every number below: record how busy it was.
            "loadavg_at_start": os.getloadavg()[0],
        },
        "helm": subprocess.run([REAL_HELM, "version", "--short"], capture_output=True, text=True).stdout.strip(),
    }
    try:
        with contextlib.ExitStack() as stack:
            kubeconfig = args.kubeconfig or stack.enter_context(sandbox(work))
            repo = work / "values-repo"
            generate(repo, clusters=1)
            helm, log = write_shim(work)
            svc = Service(work, repo, kubeconfig, helm)
            stack.callback(svc.stop)
            svc.wait_ready()
            first = svc.wait_idle()
            assert first["status"] == "succeeded", first
            time.sleep(3)
            results["idle_rss_mib_after_startup"] = round(rss_mib(svc.proc.pid), 1)
            if not args.skip_latency:
                results["webhook_to_first_helm_exec"] = bench_latency(svc, repo, log, args.samples, quiet=2.1)
            results["releases_idle"] = hammer(svc, args.readers, args.window / 2)
            results["releases_during_run"] = bench_releases(
                svc, repo, kubeconfig, args.readers, args.window, rollout=not args.no_rollout
            )
            time.sleep(3)
            results["idle_rss_mib_after_load"] = round(rss_mib(svc.proc.pid), 1)
            results["machine"]["loadavg_at_end"] = os.getloadavg()[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    lat = results.get("webhook_to_first_helm_exec", {"p50_ms": "-", "p99_ms": "-"})
    rel = results["releases_during_run"]
    print(
        f"\nwebhook -> first helm exec: p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms (target p50 < 100 ms)\n"
        f"/releases during a run: {rel['throughput_rps']} req/s, p50 {rel['p50_ms']} ms, p99 {rel['p99_ms']} ms"
        f" (target p99 < 50 ms)\nidle RSS: {results['idle_rss_mib_after_startup']} MiB (target < 120 MiB)"
    )
    if not re.match(r"v4\.", results["helm"]):
        print("warning: not helm v4", file=sys.stderr)


if __name__ == "__main__":
    main()
