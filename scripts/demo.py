#!/usr/bin/env python3
"""`make demo`: deploy the demo cluster on the embedded Kubernetes API sandbox, then roll one change.

1. starts `deploy-manager sandbox` (a loopback Kubernetes API that the real helm drives);
2. builds a Git repo from this checkout's values/, charts/openstack/ and bootstrap/;
3. `deploy-manager apply --cluster demo`: every component in dependency order, bootstrap Jobs included;
4. commits a keystone config change and shows that the plan names exactly that change, then applies it;
5. leaves the sandbox running only with --keep, printing how to push more changes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEPLOY_MANAGER = str(BIN / "deploy-manager")


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def run(*args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    print("$ " + " ".join(args), flush=True)
    result = subprocess.run(args, text=True, env=env, capture_output=True)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if check and result.returncode != 0:
        raise SystemExit(f"demo: command failed with exit code {result.returncode}: {' '.join(args)}")
    return result


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True)


def build_values_repo(dest: Path) -> None:
    for part in ("values", "charts/openstack", "bootstrap"):
        shutil.copytree(ROOT / part, dest / part, symlinks=True)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "config", "user.email", "demo@deploy-manager.invalid")
    git(dest, "config", "user.name", "demo")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "demo: initial OpenStack control plane")


def start_sandbox(work: Path) -> tuple[subprocess.Popen[str], Path]:
    """kubesim, or with DM_DEMO_CLUSTER=kube (`make demo-kube`) the real control plane of `kubecluster`;
    both print one ready line naming the kubeconfig."""
    kubeconfig = work / "kubeconfig"
    if os.environ.get("DM_DEMO_CLUSTER") == "kube":
        cmd = [sys.executable, "-m", "kubecluster", "--workdir", str(work / "kube")]
        ready = "kube ready"
    else:
        cmd = [DEPLOY_MANAGER, "sandbox", "--port", "0", "--kubeconfig-out", str(kubeconfig)]
        ready = "sandbox ready"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith(ready):
        proc.kill()
        raise SystemExit(f"demo: the cluster did not start (said {line!r})")
    print(line, flush=True)
    kubeconfig = Path(line.split("kubeconfig=", 1)[1].split()[0])
    return proc, kubeconfig


def deployment_revisions(kubeconfig: Path) -> dict[str, str]:
    """Deployment name -> its rollout revision (bumped only when the pod template changes)."""
    import json

    kubectl = str(ROOT / ".tools" / "bin" / "kubectl")
    args = [kubectl, "--kubeconfig", str(kubeconfig), "get", "deployments", "-n", "openstack", "-o", "json"]
    items = json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)["items"]
    return {
        d["metadata"]["name"]: d["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision", "")
        for d in items
    }


def change_keystone_config(repo: Path) -> None:
    import yaml

    path = repo / "values" / "demo" / "keystone.yaml"
    values = yaml.safe_load(path.read_text()) or {}
    # A token lifetime change: only keystone's config (and so its Deployment) should roll.
    token = values.setdefault("conf", {}).setdefault("keystone", {}).setdefault("token", {})
    token["expiration"] = int(token.get("expiration", 3600)) + 3600
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    git(repo, "commit", "-q", "-am", f"demo: keystone token expiration {token['expiration']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keep", action="store_true", help="keep the sandbox running at the end")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dm-demo-"))
    env = dict(os.environ, DM_STATE_DIR=str(work / "state"))
    step("Starting the Kubernetes API sandbox")
    sandbox, kubeconfig = start_sandbox(work)
    try:
        repo = work / "values-repo"
        step(f"Building the values repo at {repo}")
        build_values_repo(repo)
        common = ["--repo", str(repo), "--cluster", "demo", "--kubeconfig", str(kubeconfig)]
        step("Plan for the demo cluster (nothing deployed yet)")
        run(DEPLOY_MANAGER, "plan", *common, "-o", "table", env=env)
        step("Apply: every component in dependency order, bootstrap steps included")
        run(DEPLOY_MANAGER, "apply", *common, env=env)
        run(str(ROOT / ".tools" / "bin" / "helm"), "list", "-A", "--kubeconfig", str(kubeconfig))
        step("A no-op re-apply costs nothing")
        run(DEPLOY_MANAGER, "plan", *common, "-o", "table", env=env)
        step("Push a change to keystone's config")
        before = deployment_revisions(kubeconfig)
        change_keystone_config(repo)
        run(DEPLOY_MANAGER, "plan", *common, "-o", "table", env=env)
        run(DEPLOY_MANAGER, "apply", *common, env=env)
        after = deployment_revisions(kubeconfig)
        rolled = sorted(name for name in after if after[name] != before.get(name))
        print(f"Deployments rolled by the change: {', '.join(rolled) or 'none'} (of {len(after)})", flush=True)
        step("Deployed releases and run history")
        run(DEPLOY_MANAGER, "status", "--cluster", "demo", "--kubeconfig", str(kubeconfig), "-o", "table", env=env)
        run(DEPLOY_MANAGER, "history", "--cluster", "demo", env=env)
        print(
            "\nTry it yourself: edit a file under "
            f"{repo}/values/demo/, commit, then run\n  DM_STATE_DIR={work}/state {DEPLOY_MANAGER} "
            f"apply {' '.join(common)}\n",
            flush=True,
        )
        if args.keep:
            print(f"The sandbox keeps running (kubeconfig {kubeconfig}); Ctrl-C to stop.", flush=True)
            sandbox.wait()
    finally:
        if sandbox.poll() is None:
            sandbox.send_signal(signal.SIGTERM)
            sandbox.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
