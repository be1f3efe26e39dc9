"""Crash trials: SIGKILL `deploy-manager apply` or `deploy-manager serve` in the middle of a multi-component
run with bootstrap steps, restart it with no human help, and check that the cluster converges.

    python -m bench.crash_trials [--mode cli|service|both] [--trials 20] [--seed 1] [-o table|json]
                                 [--converge-timeout 240] [--slow 1.5] [--lease-seconds 30] [--out FILE]

The harness drives the product only from the outside, so it keeps working whatever the inside looks like:
the `deploy-manager` CLI (`apply`, `plan`, `status`, `history`), the service over HTTP (`deploy-manager
serve`), helm/kubectl, and the sandbox's `/_sandbox/` control API.

Set-up, once: a values repo (this checkout's values/, charts/openstack/ and bootstrap/, cluster `demo`) with
two commits behind a bare `file://` remote. Commit A is the demo cluster without cinder; the head commit B
adds cinder (a fresh install with `before`/`after` bootstrap Jobs), changes a key under `global` (so every
component is upgraded while no other bootstrap step's inputs change), adds a keystone identity domain (two
keystone `after` steps get a new digest) and changes a keystone config option (a rollout). A is applied once
on a sandbox that persists its objects (`deploy-manager sandbox --state-file`); every trial starts from a copy
of that state and of the run database, so trials are independent (a trial that leaves a release stuck does not
spoil the next).

A trial: start a sandbox from the copy, slow every Job and workload down (the sandbox's `slow` fault) so the
run lasts long enough for a kill to land mid-helm or mid-bootstrap, start the victim (`apply` of the head, or
`serve`, whose start-up run applies the head), SIGKILL its whole process group (the python process and the
helm it runs, as when a pod dies) after a random delay drawn from a seeded RNG, then restart it:

- cli: `deploy-manager apply` again, as a cron or a person would, until it exits 0 (at most --cli-attempts);
- service: `deploy-manager serve` again; wait for its first run after the restart to finish.

Then, with nothing running, the checks (each failure is a reason the trial is `stuck`):

- `helm ls -A` (helm 4 lists every status): no release in `pending-*` (nor `failed`, nor missing);
- every release's latest revision is `deployed` and labelled `deploy-manager.io/commit=<head>`;
- `deploy-manager plan` of the head: every action `none`;
- no bootstrap step re-run whose digest did not change: per (component, step, digest) at most one Job
  ever (Job UIDs are sampled every second during the trial), and a Job present before the trial keeps its UID;
  `always` steps (they carry a sequence number) are exempt;
- the store: `deploy-manager history -o json` is readable and no run is left `running`/`queued`.

Measured too: kill -9 -> first helm write (`install|upgrade|rollback|uninstall` exec, logged by a shim in front
of the pinned helm) of the restarted process, and -> the first helm release Secret it creates (the Secret's
creationTimestamp, 1 s resolution).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
DM = str(Path(sys.executable).parent / "deploy-manager")
CLUSTER = "demo"
NAMESPACE = "openstack"
BRANCH = "main"
READ_TOKEN = "crash-trials-read-token-0123456789"
WRITE_TOKEN = "crash-trials-write-token-0123456789"
WEBHOOK_SECRET = "crash-trials-webhook-secret-0123456789"
HELM_WRITES = ("install", "upgrade", "rollback", "uninstall")
MANAGED_BY = "app.kubernetes.io/managed-by=deploy-manager"
LABEL = "deploy-manager.io/"
T = TypeVar("T")


def tool(name: str, env_var: str) -> str:
    pinned = ROOT / ".tools" / "bin" / name
    return os.environ.get(env_var) or (str(pinned) if pinned.exists() else shutil.which(name) or name)


HELM = tool("helm", "DM_HELM_BIN")
KUBECTL = tool("kubectl", "DM_KUBECTL_BIN")


class HarnessError(Exception):
    """The harness itself could not do its job (not a finding about the product)."""


def run(args: list[str], timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)


def git(repo: Path, *args: str) -> str:
    done = run(["git", "-C", str(repo), *args])
    if done.returncode != 0:
        raise HarnessError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, every: float = 0.2) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(every)
    raise HarnessError(f"timed out after {timeout:.0f} s waiting for {what}")


def kill_group(proc: subprocess.Popen[Any], sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


# --- the values repo ---------------------------------------------------------------------------------------


@dataclass
class Repo:
    remote: Path
    base: str  # commit A: the cluster before the trial's run
    head: str  # commit B: what every trial must converge to


def _edit_yaml(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load(path.read_text()) or {}
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def only(cluster: dict[str, Any], keep: set[str] | None) -> dict[str, Any]:
    """The cluster restricted to the components in `keep` (and their needs among them); all if None."""
    if keep is None:
        return cluster
    comps = {n: c for n, c in cluster["components"].items() if n in keep}
    for comp in comps.values():
        if "needs" in comp:
            comp["needs"] = [n for n in comp["needs"] if n in keep]
    return {**cluster, "components": comps}


def build_repo(work: Path, keep: set[str] | None = None) -> Repo:
    repo, remote = work / "values-repo", work / "values-remote.git"
    for part in ("values", "charts/openstack", "bootstrap"):
        shutil.copytree(ROOT / part, repo / part, symlinks=True)
    cluster_file = repo / "values" / CLUSTER / "cluster.yaml"
    full = only(yaml.safe_load(cluster_file.read_text()), keep)
    if "cinder" not in full["components"]:
        raise HarnessError("the trials need cinder: the head commit installs it")
    cluster_file.write_text(yaml.safe_dump(full, sort_keys=False))

    def without_cinder(data: dict[str, Any]) -> None:
        data["components"].pop("cinder")
        for comp in data["components"].values():
            if "needs" in comp:
                comp["needs"] = [n for n in comp["needs"] if n != "cinder"]

    _edit_yaml(cluster_file, without_cinder)
    git(repo, "init", "-q", "-b", BRANCH)
    git(repo, "config", "user.email", "crash-trials@deploy-manager.invalid")
    git(repo, "config", "user.name", "crash-trials")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "crash trials: the cluster before the run (no cinder)")
    base = git(repo, "rev-parse", "HEAD")

    cluster_file.write_text(yaml.safe_dump(full, sort_keys=False))  # cinder back: an install with bootstrap
    _edit_yaml(repo / "values" / CLUSTER / "_global.yaml", lambda d: d["global"].update(crashTrial="head"))

    def keystone(data: dict[str, Any]) -> None:
        data["domains"] = {"crashtrial": {"description": "crash trials"}}  # register-endpoints, domain-manage
        token = data.setdefault("conf", {}).setdefault("keystone", {}).setdefault("token", {})
        token["expiration"] = int(token.get("expiration", 3600)) + 600  # keystone-api rolls

    _edit_yaml(repo / "values" / CLUSTER / "keystone.yaml", keystone)
    git(repo, "commit", "-qam", "crash trials: the head (cinder, a global key, a keystone domain and option)")
    head = git(repo, "rev-parse", "HEAD")
    git(work, "init", "-q", "--bare", "-b", BRANCH, str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "origin", BRANCH)
    return Repo(remote=remote, base=base, head=head)


# --- the sandbox and the cluster as kubectl/helm see it ---------------------------------------------------


class Sandbox:
    """`deploy-manager sandbox` as a process, persisting its objects to `state_file`."""

    def __init__(self, work: Path, state_file: Path, tag: str) -> None:
        self.kubeconfig = work / f"kubeconfig-{tag}"
        self.log_path = work / f"sandbox-{tag}.log"
        args = [DM, "sandbox", "--port", "0", "--kubeconfig-out", str(self.kubeconfig),
                "--state-file", str(state_file), "--ready-delay", "0.05"]
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

        def ready() -> str | None:
            if self.proc.poll() is not None:
                raise HarnessError(f"sandbox exited {self.proc.returncode}: {self.log_path.read_text()[-1000:]}")
            found = re.search(r"^sandbox ready (\S+)", self.log_path.read_text(), re.MULTILINE)
            return found.group(1) if found else None

        self.url = wait_for("the sandbox", ready, timeout=60)
        self.http = httpx.Client(base_url=self.url, timeout=30)
        self.home = work / f"home-{tag}"
        self.home.mkdir(exist_ok=True)

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
        kill_group(self.proc)
        self.proc.wait()

    def fault(self, **fault: Any) -> None:
        self.http.post("/_sandbox/faults", json=fault).raise_for_status()

    def env(self) -> dict[str, str]:
        # helm/kubectl caches kept out of $HOME; no DM_* setting of the caller's leaks into the product, except
        # the Lease's namespace, the same for `apply` and `serve` (outside a pod there is no default).
        env = {k: v for k, v in os.environ.items() if not k.startswith("DM_")}
        return {**env, "HOME": str(self.home), "XDG_CACHE_HOME": str(self.home / ".cache"),
                "XDG_CONFIG_HOME": str(self.home / ".config"), "XDG_DATA_HOME": str(self.home / ".data"),
                "DM_LEASE_NAMESPACE": "default"}

    def kubectl_json(self, *args: str) -> dict[str, Any]:
        done = run([KUBECTL, "--kubeconfig", str(self.kubeconfig), *args, "-o", "json"], env=self.env())
        if done.returncode != 0:
            raise HarnessError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    def helm_releases(self) -> list[dict[str, Any]]:
        done = run([HELM, "--kubeconfig", str(self.kubeconfig), "ls", "-A", "-o", "json"], env=self.env())
        if done.returncode != 0:
            raise HarnessError(f"helm ls: {done.stderr.strip()}")
        return json.loads(done.stdout or "[]")  # type: ignore[no-any-return]

    def release_secrets(self) -> list[dict[str, Any]]:
        return list(self.kubectl_json("get", "secrets", "-A", "-l", "owner=helm")["items"])

    def jobs(self) -> list[dict[str, Any]]:
        return list(self.kubectl_json("get", "jobs", "-A", "-l", MANAGED_BY)["items"])


JobKey = tuple[str, str, str, str]  # (namespace, component, step, step digest)


def job_key(job: dict[str, Any]) -> JobKey | None:
    """(namespace, component, step, digest) of a bootstrap Job; None for an `always` step's (sequenced) Job."""
    labels = job["metadata"].get("labels") or {}
    if LABEL + "sequence" in labels or LABEL + "step" not in labels:
        return None
    return (job["metadata"]["namespace"], labels.get(LABEL + "component", ""), labels[LABEL + "step"],
            labels.get(LABEL + "step-digest", ""))


class JobWatcher:
    """Samples bootstrap Jobs every `every` seconds: every UID seen per (component, step, digest)."""

    def __init__(self, sandbox: Sandbox, every: float = 1.0) -> None:
        self.sandbox, self.every = sandbox, every
        self.seen: dict[JobKey, set[str]] = {}
        self.before: dict[JobKey, str] = {}
        self._stop = threading.Event()
        self.sample(first=True)
        self._thread = threading.Thread(target=self._loop, name="job-watcher", daemon=True)
        self._thread.start()

    def sample(self, first: bool = False) -> list[dict[str, Any]]:
        jobs = self.sandbox.jobs()
        for job in jobs:
            key = job_key(job)
            if key is None:
                continue
            self.seen.setdefault(key, set()).add(job["metadata"]["uid"])
            if first:
                self.before[key] = job["metadata"]["uid"]
        return jobs

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            with contextlib.suppress(Exception):  # a busy sandbox: the next sample catches up
                self.sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.sample()

    def reruns(self) -> list[str]:
        return reruns(self.seen, self.before)


def reruns(seen: dict[JobKey, set[str]], before: dict[JobKey, str]) -> list[str]:
    """Bootstrap steps run more than once at one digest: several Job UIDs seen for one (component, step,
    digest), or a Job that existed before the trial replaced by another."""
    found = []
    for key, uids in sorted(seen.items()):
        _, component, step, digest = key
        runs = uids | ({before[key]} if key in before else set())
        if len(runs) > 1:
            found.append(f"{component}/{step}@{digest[:10]} ran {len(runs)}x")
    return found


# --- the product, from outside ----------------------------------------------------------------------------


def write_helm_shim(work: Path) -> tuple[Path, Path]:
    """helm behind a shim that logs the wall-clock time and arguments of every exec, then execs helm
    (exec, so the product's signals and pipes reach helm itself)."""
    log, shim = work / "helm-execs.log", work / "helm"
    shim.write_text(f'#!/bin/sh\nprintf "%s %s\\n" "$(date +%s.%N)" "$*" >> "{log}"\nexec "{HELM}" "$@"\n')
    shim.chmod(0o755)
    log.touch()
    return shim, log


def helm_execs(log: Path, after: float) -> list[tuple[float, str]]:
    out = []
    for line in log.read_text().splitlines():
        stamp, _, args = line.partition(" ")
        with contextlib.suppress(ValueError):
            if float(stamp) >= after:
                out.append((float(stamp), args))
    return out


def subcommand(args: str) -> str:
    return next((a for a in args.split() if not a.startswith("-")), "")


def helm_in_flight(pgid: int) -> list[str]:
    """The helm commands running in the victim's process group right now ("upgrade keystone", …)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if not argv[0].endswith(b"helm"):
                continue
            words = [a.decode() for a in argv[1:] if a]
            positional = [w for w in words if not w.startswith("-")]
            found.append(" ".join(positional[:2]))
    return sorted(found)


@dataclass
class Product:
    """How a trial starts the victim: the same process for the first start and the restart."""

    mode: str
    remote: Path
    state_dir: Path
    kubeconfig: Path
    helm: Path
    work: Path
    lease_seconds: float
    env: dict[str, str]

    def start(self, tag: str) -> tuple[subprocess.Popen[Any], Path, str]:
        """The victim process, its log, and (service) its URL."""
        log_path = self.work / f"{self.mode}-{tag}.log"
        with log_path.open("w") as log:
            if self.mode == "cli":
                args = [DM, "apply", "--repo", f"file://{self.remote}", "--cluster", CLUSTER, "--state-dir",
                        str(self.state_dir), "--kubeconfig", str(self.kubeconfig), "--helm-bin", str(self.helm),
                        "-o", "json"]
                return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                        start_new_session=True), log_path, ""
            env = {k: v for k, v in self.env.items() if not k.startswith("DM_")}
            env.update(
                DM_REPO_URL=f"file://{self.remote}", DM_BRANCH=BRANCH, DM_CLUSTER=CLUSTER,
                DM_STATE_DIR=str(self.state_dir), DM_KUBECONFIG=str(self.kubeconfig), DM_HELM_BIN=str(self.helm),
                DM_POLL_INTERVAL_SECONDS="0", DM_OBSERVE_INTERVAL_SECONDS="0",
                DM_GITHUB_WEBHOOK_SECRET=WEBHOOK_SECRET, DM_READ_TOKENS=READ_TOKEN, DM_WRITE_TOKENS=WRITE_TOKEN,
                DM_LEASE_NAMESPACE="default", DM_LEASE_DURATION_SECONDS=f"{self.lease_seconds:g}",
                DM_LEASE_RENEW_SECONDS=f"{max(self.lease_seconds / 3, 0.5):g}",
                DM_SHUTDOWN_GRACE_SECONDS="20",
            )
            args = [DM, "serve", "--host", "127.0.0.1", "--port", "0"]
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

        def url() -> str | None:
            if proc.poll() is not None:
                raise HarnessError(f"serve exited {proc.returncode}: {log_path.read_text()[-1500:]}")
            found = re.search(r"Uvicorn running on (http://[\d.]+:\d+)", log_path.read_text())
            return found.group(1) if found else None

        return proc, log_path, wait_for("the service to listen", url, timeout=90)

    def plan(self) -> dict[str, Any]:
        done = run([DM, "plan", "--repo", f"file://{self.remote}", "--cluster", CLUSTER, "--state-dir",
                    str(self.state_dir), "--kubeconfig", str(self.kubeconfig), "--helm-bin", str(self.helm),
                    "-o", "json"], env=self.env, timeout=300)
        if done.returncode != 0:
            return {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    def last_run_id(self) -> int:
        code, runs = self.history()
        return max((int(r["id"]) for r in runs), default=0) if code == 0 else 0

    def history(self) -> tuple[int, Any]:
        done = run([DM, "history", "--cluster", CLUSTER, "--state-dir", str(self.state_dir), "--limit", "500",
                    "-o", "json"], env=self.env)
        if done.returncode != 0:
            return done.returncode, (done.stderr.strip().splitlines() or ["?"])[-1]
        try:
            return 0, json.loads(done.stdout)
        except ValueError as exc:
            return 1, f"history is not JSON: {exc}"


def stop_service(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=40)
    kill_group(proc)  # whatever is left (a helm it started)
    proc.wait()


def service_runs(url: str) -> list[dict[str, Any]] | None:
    with contextlib.suppress(httpx.HTTPError, ValueError):
        answer = httpx.get(f"{url}/runs", params={"limit": 20}, headers={"Authorization": f"Bearer {READ_TOKEN}"},
                           timeout=10)
        if answer.status_code == 200:
            return list(answer.json())
    return None


def wait_service_run(url: str, proc: subprocess.Popen[Any], since_id: int, timeout: float) -> dict[str, Any] | None:
    """The first run with id > since_id once it and every other run are finished; None on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        runs = service_runs(url)
        if runs:
            newer = [r for r in runs if r["id"] > since_id]
            if newer and all(r["status"] not in ("queued", "running") for r in runs):
                return min(newer, key=lambda r: r["id"])
        time.sleep(0.5)
    return None


# --- one trial ----------------------------------------------------------------------------------------------


@dataclass
class Trial:
    mode: str
    index: int  # 0: the control (no kill), which also calibrates the kill window
    kill_after_first_write_s: float | None = None  # the drawn moment, from the run's first helm write
    kill_after_start_s: float | None = None
    first_write_after_start_s: float | None = None
    killed: bool = False
    exited_before_kill: int | None = None  # cli: apply's exit code; service: 0 if its run had finished
    in_flight_at_kill: list[str] = field(default_factory=list)
    helm_writes_before_kill: int = 0
    pending_after_kill: list[str] = field(default_factory=list)
    jobs_running_at_kill: int = 0
    run_span_s: float | None = None  # control: first helm write -> run finished
    restart: list[str] = field(default_factory=list)  # what each restart did (exit codes / run statuses)
    kill_to_first_helm_write_s: float | None = None
    first_helm_write_after_restart: str = ""
    kill_to_first_release_secret_s: float | None = None
    kill_to_restarted_run_start_s: float | None = None  # service: the restarted service's run began
    converge_s: float | None = None
    converged: bool = False
    reasons: list[str] = field(default_factory=list)
    seconds: float = 0.0


def pending(sandbox: Sandbox) -> list[str]:
    return sorted(f"{r['name']}:{r['status']}" for r in sandbox.helm_releases() if r["status"].startswith("pending"))


def judge(*, expected: set[str], head: str, releases: list[dict[str, Any]], secret_labels: list[dict[str, str]],
          plan: dict[str, Any], reruns: list[str], history: tuple[int, Any]) -> list[str]:
    """Why the cluster has not converged (empty: it has), from what helm, kubectl, `plan` and `history` said.

    `releases`: `helm ls -A -o json`; `secret_labels`: the labels of every helm release Secret; `plan`:
    `deploy-manager plan -o json` (or {"error": …}); `reruns`: bootstrap steps that ran twice at one digest;
    `history`: (exit code, `deploy-manager history -o json` or the error line)."""
    reasons = []
    by_name = {r["name"]: r for r in releases}
    reasons += [f"missing: {name}" for name in sorted(expected - set(by_name))]
    reasons += [f"{r['status']}: {name} rev {r['revision']}" for name, r in sorted(by_name.items())
                if r["status"] != "deployed"]
    latest: dict[str, dict[str, str]] = {}
    for labels in secret_labels:
        name, version = labels.get("name", ""), int(labels.get("version", "0"))
        if name not in latest or version > int(latest[name].get("version", "0")):
            latest[name] = labels
    for name, labels in sorted(latest.items()):
        commit = labels.get(LABEL + "commit", "")
        if labels.get("status") == "deployed" and commit != head:
            reasons.append(f"not at head: {name} at {commit[:12] or '?'}")
    if "error" in plan:
        reasons.append(f"plan error: {plan['error']}")
    for action in plan.get("actions", []):
        if action["action"] != "none":
            why = "; ".join(action.get("reasons") or [])[:120]
            reasons.append(f"plan {action['action']}: {action['component']}" + (f" ({why})" if why else ""))
    reasons += [f"bootstrap re-run: {rerun}" for rerun in reruns]
    code, runs = history
    if code != 0:
        reasons.append(f"history unreadable: {runs}")
    else:
        reasons += [f"store: run {r['id']} left {r['status']}" for r in runs if r["status"] in ("running", "queued")]
    return reasons


def cause(reason: str) -> str:
    """A reason without its release names and numbers: "pending-upgrade", "store: run left running", …"""
    head, _, rest = reason.partition(": ")
    if head == "store":
        return "store: " + re.sub(r"run \d+ ", "run ", rest)
    return head


def check(trial: Trial, sandbox: Sandbox, product: Product, repo: Repo, watcher: JobWatcher,
          expected: set[str]) -> None:
    """Observe the cluster and the store, then judge; every failure is appended to trial.reasons."""
    trial.reasons += judge(
        expected=expected,
        head=repo.head,
        releases=sandbox.helm_releases(),
        secret_labels=[s["metadata"].get("labels") or {} for s in sandbox.release_secrets()],
        plan=product.plan(),
        reruns=watcher.reruns(),
        history=product.history(),
    )
    trial.converged = not trial.reasons


def first_release_secret_after(sandbox: Sandbox, after: float) -> float | None:
    stamps = []
    for secret in sandbox.release_secrets():
        created = secret["metadata"].get("creationTimestamp")
        if created:
            t = datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
            if t > after:  # 1 s resolution: one the killed helm wrote in the kill's own second is not counted
                stamps.append(t)
    return min(stamps) if stamps else None


def wait_first_write(log: Path, t0: float, proc: subprocess.Popen[Any], timeout: float) -> float:
    """The wall-clock time of the victim's first helm write (its run has begun)."""

    def probe() -> float | None:
        writes = [t for t, a in helm_execs(log, t0) if subcommand(a) in HELM_WRITES]
        if writes:
            return writes[0]
        if proc.poll() is not None:
            raise HarnessError(f"the victim exited {proc.returncode} before any helm write")
        return None

    return wait_for("the first helm write", probe, timeout=timeout, every=0.02)


def run_trial(trial: Trial, *, work: Path, base: Path, repo: Repo, helm: Path, helm_log: Path,
              kill_fraction: float | None, span: float, args: argparse.Namespace, expected: set[str]) -> Trial:
    started = time.monotonic()
    tdir = work / f"{trial.mode}-{trial.index}"
    tdir.mkdir()
    shutil.copy(base / "kube.json", tdir / "kube.json")
    shutil.copytree(base / "state", tdir / "state")
    sandbox = Sandbox(tdir, tdir / "kube.json", "t")
    procs: list[subprocess.Popen[Any]] = []
    try:
        # Every Job and workload takes --slow seconds: helm --wait and the bootstrap Jobs dominate the run.
        sandbox.fault(type="slow", kind="*", seconds=args.slow)
        watcher = JobWatcher(sandbox)
        product = Product(trial.mode, repo.remote, tdir / "state", sandbox.kubeconfig, helm, tdir,
                          args.lease_seconds, sandbox.env())
        t0 = time.time()
        last_id = product.last_run_id() if trial.mode == "service" else 0
        proc, _, url = product.start("first")
        procs.append(proc)
        first_write = wait_first_write(helm_log, t0, proc, timeout=args.converge_timeout)
        trial.first_write_after_start_s = round(first_write - t0, 2)
        if kill_fraction is None:  # the control trial: let the run finish
            if trial.mode == "cli":
                proc.wait(timeout=args.converge_timeout)
                trial.restart.append(f"apply exit {proc.returncode}")
            else:
                finished = wait_service_run(url, proc, last_id, args.converge_timeout)
                trial.restart.append(f"run {finished['status'] if finished else 'not finished'}")
            trial.run_span_s = round(time.time() - first_write, 2)
            if trial.mode == "service":
                stop_service(proc)
        else:
            # A random moment of the run: from its first helm write to (nearly) its end, as the control measured.
            trial.kill_after_first_write_s = round(kill_fraction * span, 2)
            deadline = first_write + kill_fraction * span
            while time.time() < deadline and proc.poll() is None:
                time.sleep(0.02)
            if proc.poll() is not None:
                trial.exited_before_kill = proc.returncode
            elif trial.mode == "service":
                runs = service_runs(url) or [{"status": "?"}]
                if runs[0]["status"] not in ("queued", "running", "?"):
                    trial.exited_before_kill = 0  # the run had finished: not a mid-run kill
            trial.in_flight_at_kill = helm_in_flight(proc.pid)
            kill_group(proc)
            kill_at = time.time()
            proc.wait()
            trial.kill_after_start_s = round(kill_at - t0, 2)
            trial.killed = trial.exited_before_kill is None
            trial.helm_writes_before_kill = sum(subcommand(a) in HELM_WRITES for _, a in helm_execs(helm_log, t0))
            trial.pending_after_kill = pending(sandbox)
            trial.jobs_running_at_kill = sum(
                1 for j in watcher.sample() if not (j.get("status") or {}).get("completionTime")
                and not (j.get("status") or {}).get("failed"))
            restart_t = time.monotonic()
            bound = restart_t + args.converge_timeout
            if trial.mode == "cli":
                for attempt in range(args.cli_attempts):
                    again, _, _ = product.start(f"restart{attempt}")
                    procs.append(again)
                    try:
                        again.wait(timeout=max(bound - time.monotonic(), 1))
                        trial.restart.append(f"apply exit {again.returncode}")
                    except subprocess.TimeoutExpired:
                        kill_group(again)
                        again.wait()
                        trial.restart.append("apply timed out")
                        break
                    if again.returncode == 0 or time.monotonic() >= bound:
                        break
            else:
                last_id = product.last_run_id()
                again, _, url = product.start("restart")
                procs.append(again)
                # After a finished run the restart has nothing to do (no run): do not wait the whole bound.
                wait = args.lease_seconds + 60 if trial.exited_before_kill is not None else bound - time.monotonic()
                finished = wait_service_run(url, again, last_id, max(wait, 1))
                runs = service_runs(url) or []
                if finished and finished.get("started_at"):
                    begun = datetime.fromisoformat(finished["started_at"].replace("Z", "+00:00")).timestamp()
                    trial.kill_to_restarted_run_start_s = round(begun - kill_at, 2)
                trial.restart.append(
                    f"run {finished['id']} {finished['status']}" if finished else
                    "no run finished in time (" + ", ".join(f"{r['id']} {r['status']}" for r in runs[:3]) + ")")
                stop_service(again)
            trial.converge_s = round(time.monotonic() - restart_t, 2)
            writes = [(t, a) for t, a in helm_execs(helm_log, kill_at) if subcommand(a) in HELM_WRITES]
            if writes:
                trial.kill_to_first_helm_write_s = round(writes[0][0] - kill_at, 2)
                positional = [w for w in writes[0][1].split() if not w.startswith("-")]
                trial.first_helm_write_after_restart = " ".join(positional[:2])
            first_secret = first_release_secret_after(sandbox, kill_at)
            if first_secret is not None:
                trial.kill_to_first_release_secret_s = round(max(first_secret - kill_at, 0.0), 1)
        watcher.stop()
        check(trial, sandbox, product, repo, watcher, expected)
    except (HarnessError, subprocess.TimeoutExpired, httpx.HTTPError) as exc:
        trial.reasons.append(f"harness: {exc}"[:300])
    finally:
        for proc in procs:
            kill_group(proc)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        sandbox.stop()
        if not args.keep:
            shutil.rmtree(tdir, ignore_errors=True)
    trial.seconds = round(time.monotonic() - started, 1)
    return trial


def build_base(work: Path, repo: Repo, helm: Path) -> tuple[Path, set[str]]:
    """Commit A applied on a persisting sandbox; its state file and run database, the start of every trial."""
    base = work / "base"
    base.mkdir()
    sandbox = Sandbox(base, base / "kube.json", "base")
    try:
        done = run([DM, "apply", "--repo", f"file://{repo.remote}", "--cluster", CLUSTER, "--rev", repo.base,
                    "--state-dir", str(base / "state"), "--kubeconfig", str(sandbox.kubeconfig), "--helm-bin",
                    str(helm), "-o", "json"], env=sandbox.env(), timeout=900)
        if done.returncode != 0:
            raise HarnessError(f"applying the base commit failed ({done.returncode}): {done.stderr[-1500:]}")
        expected = {r["name"] for r in sandbox.helm_releases()} | {"cinder"}
    finally:
        sandbox.stop()
    if not (base / "kube.json").exists():
        raise HarnessError("the sandbox did not write its state file")
    return base, expected


# --- report ---------------------------------------------------------------------------------------------


def summarise(trials: list[Trial]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in sorted({t.mode for t in trials}):
        mine = [t for t in trials if t.mode == mode and t.index > 0]
        control = next((t for t in trials if t.mode == mode and t.index == 0), None)
        causes: Counter[str] = Counter()
        for t in mine:
            causes.update({cause(r) for r in t.reasons})  # trials per cause
        lat = [t.kill_to_first_helm_write_s for t in mine if t.kill_to_first_helm_write_s is not None]
        began = [t.kill_to_restarted_run_start_s for t in mine if t.kill_to_restarted_run_start_s is not None]
        out[mode] = {
            "trials": len(mine),
            "killed_mid_run": sum(t.killed for t in mine),
            "converged": sum(t.converged for t in mine),
            "stuck": sum(not t.converged for t in mine),
            # the cluster itself converged, and only the run record is wrong (a run left `running`)
            "cluster_converged": sum(all(r.startswith(("store:", "history")) for r in t.reasons) for t in mine),
            "stuck_with_pending_release": sum(any(r.startswith("pending") for r in t.reasons) for t in mine),
            "pending_right_after_kill": sum(bool(t.pending_after_kill) for t in mine),
            "stuck_causes": dict(causes.most_common()),
            "control_converged": control.converged if control else None,
            "control_run_span_s": control.run_span_s if control else None,
            "kill_to_restarted_run_start_s": {
                "n": len(began),
                "p50": round(statistics.median(began), 2) if began else None,
                "min": min(began) if began else None,
                "max": max(began) if began else None,
            },
            "kill_to_first_helm_write_s": {
                "n": len(lat),
                "p50": round(statistics.median(lat), 2) if lat else None,
                "min": min(lat) if lat else None,
                "max": max(lat) if lat else None,
            },
        }
    return out


def table(trials: list[Trial], summary: dict[str, Any]) -> str:
    lines = [f"{'MODE':<8}{'#':>3} {'KILL@S':>7} {'IN FLIGHT AT KILL':<34} {'PENDING AFTER KILL':<26} "
             f"{'RESTART':<26} {'K->WRITE':>8}  RESULT"]
    for t in trials:
        kill = "control" if t.index == 0 else f"{t.kill_after_first_write_s:.1f}"
        jobs = f"{t.jobs_running_at_kill} Job(s) running" if t.jobs_running_at_kill else ""
        flight = ", ".join(t.in_flight_at_kill) or jobs or "-"
        if t.exited_before_kill is not None:
            flight = "(run over before the kill)"
        pend = ", ".join(t.pending_after_kill) or "-"
        k2w = "-" if t.kill_to_first_helm_write_s is None else f"{t.kill_to_first_helm_write_s:.1f}"
        result = "converged" if t.converged else "STUCK: " + "; ".join(t.reasons[:3]) + (
            f" (+{len(t.reasons) - 3})" if len(t.reasons) > 3 else "")
        lines.append(f"{t.mode:<8}{t.index:>3} {kill:>7} {flight[:34]:<34} {pend[:26]:<26} "
                     f"{'; '.join(t.restart)[:26]:<26} {k2w:>8}  {result}")
    lines.append("")
    for mode, s in summary.items():
        k = s["kill_to_first_helm_write_s"]
        lines.append(f"{mode}: {s['converged']}/{s['trials']} converged, {s['stuck']} stuck; "
                     f"cluster converged (the store aside) in {s['cluster_converged']}/{s['trials']}; "
                     f"({s['stuck_with_pending_release']} with a release left pending; "
                     f"{s['pending_right_after_kill']} had one pending right after the kill); "
                     f"control run {s['control_run_span_s']} s, control converged: {s['control_converged']}")
        if s["stuck_causes"]:
            lines.append("  stuck causes: " + ", ".join(f"{c} x{n}" for c, n in s["stuck_causes"].items()))
        lines.append(f"  kill -9 -> first helm write of the restarted process: p50 {k['p50']} s, "
                     f"min {k['min']} s, max {k['max']} s (n={k['n']})")
        b = s.get("kill_to_restarted_run_start_s") or {"n": 0}
        if b["n"]:
            lines.append(f"  kill -9 -> the restarted service's run began: p50 {b['p50']} s, min {b['min']} s, "
                         f"max {b['max']} s (n={b['n']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mode", choices=["cli", "service", "both"], default="both")
    parser.add_argument("--trials", type=int, default=20, help="killed trials per mode (plus one control)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table")
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    parser.add_argument("--converge-timeout", type=float, default=180.0,
                        help="seconds from the restart until the trial must have converged")
    parser.add_argument("--cli-attempts", type=int, default=3, help="cli: apply re-runs after the kill")
    parser.add_argument("--slow", type=float, default=1.5, help="seconds every Job/workload takes (sandbox fault)")
    parser.add_argument("--lease-seconds", type=float, default=30.0, help="service: DM_LEASE_DURATION_SECONDS")
    parser.add_argument("--kill-window", type=float, nargs=2, metavar=("LO", "HI"), default=(0.05, 0.95),
                        help="kill at uniform(LO, HI) x the control run's span (first helm write -> run finished), "
                        "counted from the trial run's first helm write")
    parser.add_argument("--components", help="comma-separated subset of the demo cluster (with cinder), "
                        "for a quicker series; default: all ten")
    parser.add_argument("--span", type=float, help="the run's span in seconds (skips the control trial)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, state)")
    parser.add_argument("--report", type=Path, help="print the table of a JSON report written by --out, and exit")
    args = parser.parse_args(argv)
    if args.report:
        saved = json.loads(args.report.read_text())
        loaded = [Trial(**t) for t in saved["trials"]]
        print(table(loaded, summarise(loaded)))
        return 0

    rng = random.Random(args.seed)
    modes = ["cli", "service"] if args.mode == "both" else [args.mode]
    work = Path(tempfile.mkdtemp(prefix="dm-crash-trials-"))
    trials: list[Trial] = []
    started = time.monotonic()
    try:
        repo = build_repo(work, set(args.components.split(",")) if args.components else None)
        helm, helm_log = write_helm_shim(work)
        base, expected = build_base(work, repo, helm)
        common = dict(work=work, base=base, repo=repo, helm=helm, helm_log=helm_log, args=args, expected=expected)
        for mode in modes:
            span = args.span
            if span is None:
                control = run_trial(Trial(mode, 0), kill_fraction=None, span=0.0, **common)  # type: ignore[arg-type]
                trials.append(control)
                _progress(control, args, trials, started)
                span = control.run_span_s or 20.0
            for i in range(1, args.trials + 1):
                fraction = rng.uniform(*args.kill_window)
                trial = run_trial(Trial(mode, i), kill_fraction=fraction, span=span, **common)  # type: ignore[arg-type]
                trials.append(trial)
                _progress(trial, args, trials, started)
    except HarnessError as exc:
        print(f"crash_trials: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    report = make_report(args, trials, started, partial=False)
    if args.out:
        write_report(args.out, report)
    print(json.dumps(report, indent=2, default=str) if args.output == "json" else table(trials, report["summary"]))
    return 0


def make_report(args: argparse.Namespace, trials: list[Trial], started: float, partial: bool) -> dict[str, Any]:
    return {
        "seed": args.seed,
        "partial": partial,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "output"},
        "machine": {"cpus": os.cpu_count(), "loadavg": os.getloadavg()[0]},
        "seconds": round(time.monotonic() - started, 1),
        "summary": summarise(trials),
        "trials": [asdict(t) for t in trials],
    }


def write_report(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")


def _progress(trial: Trial, args: argparse.Namespace, trials: list[Trial], started: float) -> None:
    if args.out:  # a long series can be read (or cut short) while it runs
        write_report(args.out, make_report(args, trials, started, partial=True))
    state = "converged" if trial.converged else "stuck: " + "; ".join(trial.reasons[:2])
    kill = "control" if trial.index == 0 else f"kill {trial.kill_after_first_write_s}s into the run"
    print(f"[{trial.mode} {trial.index}] {kill} in flight {trial.in_flight_at_kill} -> {state} "
          f"({trial.seconds} s)", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
