#!/usr/bin/env python3
"""`make demo`: the service as it runs in a cluster, on the embedded Kubernetes API sandbox.

1. starts `deploy-manager sandbox` (a loopback Kubernetes API that the real helm drives);
2. builds a values repo from this checkout's values/, charts/openstack/ and bootstrap/, with a bare
   "remote" beside it whose post-receive hook sends the push webhook (scripts/demo_webhook.py);
3. starts `deploy-manager serve` on loopback watching that remote (polling every few seconds, plus the
   webhook) and prints the status page URL, the token (DEMO_TOKEN, or a generated one) and what to try;
4. follows the first run through the API as it deploys every component in dependency order, bootstrap
   Jobs included;
5. pushes a keystone config change: the webhook fires, the run's plan names the value path, only
   keystone-api rolls (counted with kubectl), /releases shows the new commit;
6. keeps serving until Ctrl-C or SIGTERM (with --once: exits after the story). Either way the service and
   the sandbox are stopped and the temporary directory is removed.

Exit status: 0 when the story went as told, or on Ctrl-C/SIGTERM (130 when that cuts a --once story short);
1 when the story did not go as told.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY_MANAGER = str(Path(sys.executable).parent / "deploy-manager")
TOOLS = ROOT / ".tools" / "bin"
CLUSTER = "demo"
NAMESPACE = "openstack"
BRANCH = "main"
CHANGED_PATH = "conf.keystone.token.expiration"  # what change_keystone_config changes
POLL_SECONDS = 5  # how often the service fetches the remote (the webhook is the fast path)
T = TypeVar("T")


class DemoError(Exception):
    """The story did not go as told: the demo says what happened and exits 1."""


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def say(text: str = "") -> None:
    print(text, flush=True)


def tool(name: str, env_var: str) -> str:
    """A binary as the tests find it: the environment's choice, else the pinned one `make tools` installed."""
    pinned = TOOLS / name
    return os.environ.get(env_var) or (str(pinned) if pinned.exists() else shutil.which(name) or name)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise DemoError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout + done.stderr


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 120, every: float = 0.2) -> T:
    """Calls `probe` until it returns something other than None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result is not None:
            return result
        time.sleep(every)
    raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")


class Children:
    """The processes the demo starts. Each gets its own session, so a terminal's Ctrl-C reaches only the
    demo, which then stops them in reverse order: the service before the sandbox it talks to."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[Any]] = []

    def start(self, args: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        proc = subprocess.Popen(args, start_new_session=True, **kwargs)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=15)
            # Whatever is left in its process group (a helm the service started, or the process itself).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def start_logged(children: Children, log_path: Path, args: list[str], ready: str, **kwargs: Any) -> re.Match[str]:
    """Starts a child that logs to `log_path` and waits for the log line matching `ready` (it is started then)."""
    with log_path.open("w") as log:
        proc = children.start(args, stdout=log, stderr=subprocess.STDOUT, **kwargs)

    def started() -> re.Match[str] | None:
        if proc.poll() is not None:
            raise DemoError(f"{args[1]} exited with status {proc.returncode}:\n{log_path.read_text()[-2000:]}")
        return re.search(ready, log_path.read_text(), re.MULTILINE)

    return wait_for(f"{args[1]} to start", started)


def start_sandbox(children: Children, work: Path) -> Path:
    """kubesim, or with DM_DEMO_CLUSTER=kube (`make demo-kube`) the real control plane of `kubecluster`
    (RBAC enforced, real controllers, kwok nodes); both log one ready line, the latter naming its kubeconfig."""
    if os.environ.get("DM_DEMO_CLUSTER") == "kube":
        args = [sys.executable, "-m", "kubecluster", "--workdir", str(work / "kube")]
        line = start_logged(children, work / "kube.log", args, r"^kube ready .*$", cwd=ROOT).group(0)
        say(line)
        return Path(line.split("kubeconfig=", 1)[1].split()[0])
    kubeconfig = work / "kubeconfig"
    args = [DEPLOY_MANAGER, "sandbox", "--port", "0", "--kubeconfig-out", str(kubeconfig)]
    say(start_logged(children, work / "sandbox.log", args, r"^sandbox ready .*$").group(0))
    return kubeconfig


def build_repos(work: Path) -> tuple[Path, Path]:
    """A working clone of this checkout's values, charts and bootstrap scripts, and its bare remote."""
    repo, remote = work / "values-repo", work / "values-remote.git"
    for part in ("values", "charts/openstack", "bootstrap"):
        shutil.copytree(ROOT / part, repo / part, symlinks=True)
    git(repo, "init", "-q", "-b", BRANCH)
    git(repo, "config", "user.email", "demo@deploy-manager.invalid")
    git(repo, "config", "user.name", "demo")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "demo: initial OpenStack control plane")
    git(work, "init", "-q", "--bare", "-b", BRANCH, str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "-u", "origin", BRANCH)
    return repo, remote


def install_webhook(remote: Path, hook_url: str, secret_file: Path) -> None:
    """The remote tells the service about every push, as a GitHub repository's webhook does."""
    command = [sys.executable, str(ROOT / "scripts" / "demo_webhook.py"), hook_url, str(secret_file)]
    hook = remote / "hooks" / "post-receive"
    hook.write_text(f"#!/bin/sh\nexec {shlex.join(command)}\n")
    hook.chmod(0o755)


def write_secret(path: Path, value: str) -> Path:
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def start_service(children: Children, work: Path, remote: Path, kubeconfig: Path, token: str) -> tuple[str, Path]:
    """`deploy-manager serve` configured as in a cluster (DM_* variables, secrets from files): URL, log file."""
    creds = work / "secrets"
    creds.mkdir(mode=0o700)
    webhook_secret = write_secret(creds / "github-webhook-secret", secrets.token_hex(32))
    tokens = write_secret(creds / "tokens", token)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DM_")}
    env.update(
        DM_REPO_URL=f"file://{remote}",
        DM_BRANCH=BRANCH,
        DM_CLUSTER=CLUSTER,
        DM_STATE_DIR=str(work / "state"),
        DM_POLL_INTERVAL_SECONDS=str(POLL_SECONDS),
        DM_OBSERVE_INTERVAL_SECONDS="30",
        DM_GITHUB_WEBHOOK_SECRET_FILE=str(webhook_secret),
        DM_READ_TOKENS_FILE=str(tokens),  # one token for both: the demo's user may also POST /runs
        DM_WRITE_TOKENS_FILE=str(tokens),
        DM_LEASE_NAMESPACE="default",
        DM_SHUTDOWN_GRACE_SECONDS="5",
    )
    log_path = work / "serve.log"
    args = [DEPLOY_MANAGER, "serve", "--host", "127.0.0.1", "--port", "0", "--kubeconfig", str(kubeconfig)]
    args += ["--helm-bin", tool("helm", "DM_HELM_BIN")]
    # Port 0: the kernel picks a free port, and uvicorn logs which.
    url = start_logged(children, log_path, args, r"Uvicorn running on (http://[\d.]+:\d+)", env=env).group(1)
    install_webhook(remote, f"{url}/hooks/github", webhook_secret)
    return url, log_path


class Api:
    """The service's JSON API, as the demo's reader would call it with the printed token."""

    def __init__(self, url: str, token: str) -> None:
        self.client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def get(self, path: str, **params: Any) -> Any:
        answer = self.client.get(path, params=params)
        answer.raise_for_status()
        return answer.json()

    def ready(self) -> bool | None:
        with contextlib.suppress(httpx.TransportError):
            if self.client.get("/readyz").status_code == 200:
                return True
        return None

    def run_after(self, run_id: int) -> dict[str, Any] | None:
        """The newest run if it is newer than `run_id`."""
        runs = self.get("/runs", limit=1)
        return runs[0] if runs and runs[0]["id"] > run_id else None

    def follow(self, run: dict[str, Any], since: float) -> dict[str, Any]:
        """Prints each step of a run as the service records it; returns the finished run."""
        run_id, printed = run["id"], 0
        say(f"run {run_id} (trigger {run['trigger']}):")
        while True:
            run = self.get(f"/runs/{run_id}")
            for s in run["steps"][printed:]:
                if s["action"] == "none":
                    continue  # in sync: counted at the end, not listed
                what = f"{s['component']:<10} {s['action']:<34} {s['status']}"
                rev = f" rev {s['helm_revision']}" if s.get("helm_revision") else ""
                reason = f"  ({s['reasons'][0]})" if s["reasons"] else ""
                say(f"  {time.monotonic() - since:5.1f}s  {what}{rev}{reason}")
            printed = len(run["steps"])
            if run["status"] not in ("queued", "running"):
                in_sync = sum(s["action"] == "none" for s in run["steps"])
                left_alone = f"; {in_sync} components in sync, left alone" if in_sync else ""
                error = f": {run['error']}" if run.get("error") else ""
                say(f"run {run_id} {run['status']}{left_alone}{error}")
                return run
            time.sleep(0.2)


def deployment_revisions(kubeconfig: Path) -> dict[str, str]:
    """Deployment name -> its rollout revision (bumped only when the pod template changes)."""
    args = [tool("kubectl", "DM_KUBECTL_BIN"), "--kubeconfig", str(kubeconfig), "get", "deployments", "-n", NAMESPACE]
    done = subprocess.run([*args, "-o", "json"], capture_output=True, text=True)
    if done.returncode != 0:
        raise DemoError(f"kubectl get deployments failed: {done.stderr.strip()}")
    return {
        d["metadata"]["name"]: d["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision", "")
        for d in json.loads(done.stdout)["items"]
    }


def change_keystone_config(repo: Path) -> str:
    """Commits a keystone token lifetime change (only keystone's config, so only its Deployment, changes)."""
    path = repo / "values" / CLUSTER / "keystone.yaml"
    values = yaml.safe_load(path.read_text()) or {}
    token = values.setdefault("conf", {}).setdefault("keystone", {}).setdefault("token", {})
    token["expiration"] = int(token.get("expiration", 3600)) + 3600
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    git(repo, "commit", "-q", "-am", f"keystone: token expiration {token['expiration']} s")
    return git(repo, "rev-parse", "HEAD").strip()


def check_run(run: dict[str, Any]) -> None:
    if run["status"] != "succeeded":
        raise DemoError(f"run {run['id']} {run['status']}: {run.get('error') or 'see the status page'}")


def tell_the_story(api: Api, repo: Path, kubeconfig: Path) -> int:
    """The story, checked as it goes (a DemoError when it goes otherwise); returns the last run's id."""
    started = time.monotonic()
    step("The first run: every component in dependency order, bootstrap Jobs included (watch the status page)")
    first = api.follow(wait_for("the first run", lambda: api.run_after(0)), started)
    check_run(first)
    installs = sum(s["action"] == "install" for s in first["steps"])
    jobs = sum(s["action"].startswith("bootstrap") and s["status"] == "succeeded" for s in first["steps"])
    say(f"{installs} releases installed, {jobs} bootstrap Jobs run")
    checks = [s for s in first["steps"] if s["action"].startswith("smoke:")]
    passed = sum(s["status"] == "succeeded" for s in checks)
    say(f"{len(checks)} workflow checks run as Jobs (values/_common/smoke.yaml): {passed} passed")

    before = deployment_revisions(kubeconfig)
    sha = change_keystone_config(repo)
    step(f"A keystone config change, {sha[:12]}: git push, and the remote's webhook tells the service")
    say(f"$ git -C {repo} push")
    say(git(repo, "push", "origin", BRANCH).rstrip())
    second = api.follow(wait_for("the pushed commit's run", lambda: api.run_after(first["id"])), time.monotonic())
    check_run(second)
    # The run records its plan's reasons with the value paths that changed.
    planned = sorted({(s["component"], p) for s in second["steps"] for r in s["reason_details"] for p in r["paths"]})
    say("The plan named: " + ", ".join(f"{component} {path}" for component, path in planned))
    if planned != [("keystone", CHANGED_PATH)]:
        raise DemoError(f"expected the plan to name only keystone's {CHANGED_PATH}")
    after = deployment_revisions(kubeconfig)
    rolled = sorted(name for name, rev in after.items() if rev != before.get(name))
    say(f"Deployments rolled: {', '.join(rolled) or 'none'} ({len(rolled)} of {len(after)}, counted with kubectl)")
    if rolled != ["keystone-api"]:
        raise DemoError(f"expected only keystone-api to roll, got {rolled}")

    step(f"GET /releases: keystone is at {sha[:12]}")

    def keystone_at_sha() -> list[dict[str, Any]] | None:
        releases: list[dict[str, Any]] = api.get("/releases")
        keystone = next((r for r in releases if r["component"] == "keystone"), None)
        return releases if keystone and keystone["deployed_commit"] == sha else None

    releases = wait_for("/releases to show the new commit", keystone_at_sha, timeout=60)
    say(f"  {'COMPONENT':<10} {'REVISION':<9} {'DEPLOYED COMMIT':<16} COMMIT")
    for r in releases:
        deployed = (r["deployed_commit"] or "")[:12]
        say(f"  {r['component']:<10} {r['revision']!s:<9} {deployed:<16} {(r['commit'] or '')[:12]}")
    say(f"\nThe story took {time.monotonic() - started:.1f} s.")
    return int(second["id"])


def serve_until_stopped(api: Api, children: Children, last_run: int, url: str, repo: Path) -> None:
    """Follows the runs your pushes start, until Ctrl-C (or a child exits, which is an error)."""
    say(f"\nServing until Ctrl-C: status page {url}/ ; push more commits to {repo}.")
    while all(proc.poll() is None for proc in children.procs):
        with contextlib.suppress(httpx.HTTPError):  # a busy moment of the service is not the end of the demo
            run = api.run_after(last_run)
            if run is not None:
                last_run = api.follow(run, time.monotonic())["id"]
        time.sleep(1)
    raise DemoError("the service or the sandbox exited by itself")


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the demo as Ctrl-C does


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--once", action="store_true", help="tell the story, then stop (for CI)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupted)
    # A demo started with SIGINT ignored (a `cmd &` of a non-interactive shell, as scripts start things) keeps it
    # ignored unless told otherwise: Ctrl-C and a test's SIGINT must still stop it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    token = os.environ.get("DEMO_TOKEN") or secrets.token_urlsafe(24)
    work = Path(tempfile.mkdtemp(prefix="dm-demo-"))
    children = Children()
    story_told = False
    try:
        step("Starting the Kubernetes API sandbox")
        kubeconfig = start_sandbox(children, work)
        step("Building the values repo and its bare remote")
        repo, remote = build_repos(work)
        say(f"{repo} (push to {remote})")
        step(f"Starting deploy-manager serve (polls the remote every {POLL_SECONDS} s, and takes its webhook)")
        url, log_path = start_service(children, work, remote, kubeconfig, token)
        api = Api(url, token)
        wait_for("/readyz", api.ready)
        say("Open the status page in a browser (any user name, the token as password):")
        say(f"status page: {url}/")
        say(f"token: {token}")
        say(f"Edit a file under {repo}/values/{CLUSTER}/, then push it (the remote's webhook starts a run):")
        say(f"try: git -C {repo} commit -am 'my change'; git -C {repo} push")
        say(f'try: curl -H "Authorization: Bearer {token}" {url}/releases')
        say(f"(the service's log, JSON lines: {log_path})")
        last_run = tell_the_story(api, repo, kubeconfig)
        story_told = True
        if not args.once:
            serve_until_stopped(api, children, last_run, url, repo)
        return 0
    except KeyboardInterrupt:
        say("\nInterrupted.")
        return 0 if story_told or not args.once else 130
    except (DemoError, httpx.HTTPError) as exc:
        print(f"demo: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        # A second Ctrl-C must not leave the sandbox or the service behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        children.stop_all()
        shutil.rmtree(work, ignore_errors=True)
        say("Stopped the service and the sandbox; removed the temporary directory.")


if __name__ == "__main__":
    sys.exit(main())
