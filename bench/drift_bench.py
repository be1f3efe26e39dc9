"""What one drift check of the `demo` cluster costs, next to the naive way, measured in one run.

    python -m bench.drift_bench [--reps 5] [-o table|json] [--out FILE]

Set-up: the sandbox (in process), a values repo from this checkout (values/, charts/openstack/, bootstrap/),
the `demo` cluster applied with the real pipeline (helm, bootstrap Jobs). Then, alternating, `--reps` times:

- ours: `Pipeline.drift_of` — one list of helm's release records, then one list per (kind, namespace) the
  release manifests use; every field the manifests set compared;
- naive: `helm get manifest` per release, then one GET per object of the manifests (the API client, no
  process per GET), compared the same way.

Requests are counted by the sandbox (`/_sandbox/stats`: every API call, helm's own included); seconds are
wall time. Both must find the same drift (a `kubectl scale` made before the measurements).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = "demo"


def tool(name: str, env_var: str) -> str:
    found = os.environ.get(env_var) or shutil.which(name, path=str(ROOT / ".tools" / "bin")) or shutil.which(name)
    if not found:
        raise SystemExit(f"{name} not found: run `make tools`")
    return found


def build_repo(work: Path) -> Path:
    repo = work / "values-repo"
    for part in ("values", "charts/openstack", "bootstrap"):
        shutil.copytree(ROOT / part, repo / part, symlinks=True)
    for args in (
        ["init", "-q", "-b", "main"],
        ["config", "user.email", "bench@deploy-manager.invalid"],
        ["config", "user.name", "bench"],
        ["add", "-A"],
        ["commit", "-q", "-m", "drift bench"],
    ):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    return repo


def naive_check(helm: str, kubeconfig: Path, env: dict[str, str], releases: list[tuple[str, str]], kube: Any) -> Any:
    """`helm get manifest` per release, one GET per object; the same comparison as ours."""
    from deploy_manager.kube.objects import ObjectsApi
    from deploy_manager.models.errors import KubeNotFound
    from deploy_manager.planner.drift import object_drift
    from deploy_manager.planner.manifest_diff import parse_manifest

    api = ObjectsApi(kube)
    drift: dict[str, list[str]] = {}
    for name, namespace in releases:
        manifest = subprocess.run(
            [helm, "get", "manifest", name, "-n", namespace, "--kubeconfig", str(kubeconfig)],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        ).stdout
        for key, obj in parse_manifest(manifest, namespace).items():
            path, _ = api.collection_path(str(obj.get("apiVersion", "")), key.kind, key.namespace)
            try:
                live = api._request(f"getting {key}", "GET", f"{path}/{key.name}")
            except KubeNotFound:
                live = None
            paths = object_drift(obj, live)
            if paths:
                drift[str(key)] = paths
    return drift


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table")
    parser.add_argument("--out", type=Path, default=None, help="Also write the JSON report here.")
    args = parser.parse_args(argv)

    from deploy_manager.observe import observe
    from deploy_manager.planner.manifest_diff import ObjectKey, parse_manifest
    from deploy_manager.source.git import GitSource
    from deploy_manager.store.sqlite import RunStore
    from deploy_manager.wiring import build_pipeline
    from kubesim.testing import start_sandbox

    helm = tool("helm", "DM_HELM_BIN")
    kubectl = tool("kubectl", "KUBECTL")
    with tempfile.TemporaryDirectory(prefix="dm-drift-bench-") as tmp:
        work = Path(tmp)
        home = work / "home"
        home.mkdir()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("HELM_", "KUBE", "DM_"))},
            "HOME": str(home),
            "HELM_CACHE_HOME": str(home / "helm-cache"),
            "HELM_CONFIG_HOME": str(home / "helm-config"),
            "HELM_DATA_HOME": str(home / "helm-data"),
        }
        repo = build_repo(work)
        with start_sandbox(work) as sandbox:
            kubeconfig = Path(sandbox.kubeconfig)
            state = work / "state"
            pipe = build_pipeline(
                helm_bin=helm, kubeconfig=kubeconfig, kube_context=None, store=RunStore.in_dir(state), state_dir=state
            )
            source = GitSource(str(repo))
            t0 = time.monotonic()
            run = pipe.apply(source, CLUSTER, "HEAD", trigger="bench")
            if run.status.value != "succeeded":
                print(json.dumps(run.to_dict(), indent=2)[:4000], file=sys.stderr)
                return 1
            applied = time.monotonic() - t0
            desired = pipe.desired(source, CLUSTER, "HEAD")
            subprocess.run(
                [kubectl, "--kubeconfig", str(kubeconfig), "-n", "openstack", "scale", "deployment",
                 "keystone-api", "--replicas=3"],
                check=True, capture_output=True, env=env,
            )  # fmt: skip
            releases = [(c.release, c.namespace) for c in desired.components.values()]
            ours: list[tuple[float, int]] = []
            naive: list[tuple[float, int]] = []
            found_ours: dict[str, list[str]] = {}
            found_naive: dict[str, list[str]] = {}
            objects = 0
            if os.environ.get("DM_DRIFT_BENCH_PROFILE"):
                import cProfile
                import pstats

                prof = cProfile.Profile()
                prof.enable()
                pipe.drift_of(desired)
                prof.disable()
                pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
            for _ in range(args.reps):
                sandbox.reset_stats()
                t = time.monotonic()
                report = pipe.drift_of(desired)
                ours.append((time.monotonic() - t, int(sandbox.stats()["requests"])))
                found_ours = {
                    str(ObjectKey(i.kind, i.namespace, i.name)): list(i.paths)
                    for c in report.components.values()
                    for i in c.items
                }
                sandbox.reset_stats()
                t = time.monotonic()
                found_naive = naive_check(helm, kubeconfig, env, releases, pipe.kube)
                naive.append((time.monotonic() - t, int(sandbox.stats()["requests"])))
            for obs in observe(pipe.kube, desired.namespaces).values():
                objects += len(parse_manifest(obs.manifest, obs.namespace))
            groups = len(
                {
                    (str(o.get("apiVersion")), k.kind, k.namespace)
                    for obs in observe(pipe.kube, desired.namespaces).values()
                    for k, o in parse_manifest(obs.manifest, obs.namespace).items()
                }
            )
    report_data: dict[str, Any] = {
        "cluster": CLUSTER,
        "releases": len(releases),
        "objects": objects,
        "kind_namespace_groups": groups,
        "apply_seconds": round(applied, 1),
        "reps": args.reps,
        "ours": {
            "seconds_median": round(statistics.median(s for s, _ in ours), 4),
            "seconds_all": [round(s, 4) for s, _ in ours],
            "requests": sorted({r for _, r in ours}),
        },
        "naive": {
            "seconds_median": round(statistics.median(s for s, _ in naive), 4),
            "seconds_all": [round(s, 4) for s, _ in naive],
            "requests": sorted({r for _, r in naive}),
        },
        "same_drift": found_ours == found_naive,
        "drift_found": found_ours,
    }
    ratio = report_data["naive"]["seconds_median"] / max(report_data["ours"]["seconds_median"], 1e-9)
    report_data["speedup"] = round(ratio, 1)
    if args.out is not None:
        args.out.write_text(json.dumps(report_data, indent=2) + "\n")
    if args.output == "json":
        print(json.dumps(report_data, indent=2))
    else:
        o, n = report_data["ours"], report_data["naive"]
        print(f"demo cluster: {len(releases)} releases, {objects} objects in {groups} (kind, namespace) groups")
        print(f"{'':8}{'requests':>10}{'seconds (median of ' + str(args.reps) + ')':>28}")
        print(f"{'ours':8}{'/'.join(map(str, o['requests'])):>10}{o['seconds_median']:>28.4f}")
        print(f"{'naive':8}{'/'.join(map(str, n['requests'])):>10}{n['seconds_median']:>28.4f}")
        print(f"speed-up {report_data['speedup']}x; same drift found: {report_data['same_drift']}")
    return 0 if report_data["same_drift"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
