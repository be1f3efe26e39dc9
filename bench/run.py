"""Core-loop benchmark: no-op plans, one-change apply, fresh install; ratios against bare helm, one run.

    python -m bench.run [--clusters 60] [--reps 5] [--out bench/results/core.json]

Everything runs against one kubesim sandbox on 127.0.0.1 (each synthetic cluster is a namespace) with the
real helm binary. Baselines are measured in the same run, on the same sandbox, right next to ours:
(a) plan of a no-op commit vs. a naive reconciler running `helm upgrade --install --wait` for every
component; (b) `Pipeline.apply` of a one-component values change vs. a bare `helm upgrade --wait` of the
same release; (c) `Pipeline.apply` of a fresh cluster vs. the DAG's critical path of bare `helm install
--wait` durations (measured per component in a separate namespace).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from bench.generate import NEEDS, cluster_name, generate
from deploy_manager.desired.charts import chart_info, export_chart
from deploy_manager.desired.loader import load_cluster
from deploy_manager.helm.runner import HelmRunner
from deploy_manager.kube.client import KubeClient
from deploy_manager.models.plan import Plan
from deploy_manager.models.run import RunStatus
from deploy_manager.pipeline import Pipeline
from deploy_manager.source.git import GitSource
from deploy_manager.store.sqlite import RunStore

ROOT = Path(__file__).resolve().parent.parent
HELM = os.environ.get("DM_HELM_BIN") or str(ROOT / ".tools/bin/helm")


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout.strip()


def _commit(root: Path, msg: str) -> str:
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", msg)
    return _git(root, "rev-parse", "HEAD")


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


@dataclass
class Bench:
    repo: Path
    state: Path
    sandbox: Any

    def __post_init__(self) -> None:
        kc = Path(self.sandbox.kubeconfig)
        self.kubeconfig = kc
        self.helm = HelmRunner(HELM, kubeconfig=kc)
        self.pipeline = Pipeline(
            helm=self.helm,
            kube=KubeClient(kubeconfig=kc),
            store=RunStore.in_dir(self.state),
            max_parallel=4,
            cache_dir=self.state / "charts",
        )
        self.source = GitSource(str(self.repo))

    def writes(self) -> int:
        return int(self.sandbox.stats()["writes"])

    def bare(self, verb: str, release: str, namespace: str, chart: str, values: dict[str, Any]) -> float:
        """One bare helm call, timed (values file written before the clock starts)."""
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump(values, fh)
        try:
            args = [HELM, *verb.split(), release, chart, "-n", namespace, "--create-namespace", "-f", fh.name]
            args += ["--wait=watcher", "--timeout", "120s", "--kubeconfig", str(self.kubeconfig)]
            t0 = time.perf_counter()
            subprocess.run(args, check=True, capture_output=True)
            return time.perf_counter() - t0
        finally:
            os.unlink(fh.name)

    def plan_all(self, names: list[str], sha: str) -> list[Plan]:
        return [self.pipeline.plan(self.source, n, sha) for n in names]

    def fresh_apply(self, cluster: str, like: str, *, render: bool) -> float:
        """Apply a new cluster shaped like `like` in its own namespace (a fresh install); time the apply."""
        spec = yaml.safe_load((self.repo / "values" / like / "cluster.yaml").read_text())
        spec["namespace"] = cluster
        (self.repo / "values" / cluster).mkdir(parents=True, exist_ok=True)
        (self.repo / "values" / cluster / "cluster.yaml").write_text(yaml.safe_dump(spec))
        sha = _commit(self.repo, f"fresh cluster {cluster}")
        self.pipeline.preflight_render = render
        try:
            t, record = _timed(lambda: self.pipeline.apply(self.source, cluster, sha, trigger="bench"))
        finally:
            self.pipeline.preflight_render = True
        assert record.status is RunStatus.succeeded, record.to_dict()
        assert len(record.steps) == len(NEEDS)
        return t

    def charts(self, cluster: str) -> dict[str, tuple[str, dict[str, Any], str]]:
        """component -> (exported chart dir, merged values, release) at HEAD."""
        commit = self.source.resolve("HEAD")
        desired = load_cluster(self.source, commit, cluster)
        out = {}
        for name, comp in desired.components.items():
            assert comp.chart.path is not None
            info = chart_info(self.source, commit, comp.chart.path)
            out[name] = (str(export_chart(self.source, commit, info, self.state / "charts")), comp.values, comp.release)
        return out


def critical_path(durations: dict[str, float]) -> float:
    finish: dict[str, float] = {}

    def end(n: str) -> float:
        if n not in finish:
            finish[n] = durations[n] + max((end(d) for d in NEEDS[n]), default=0.0)
        return finish[n]

    return max(end(n) for n in NEEDS)


def run(clusters: int, reps: int, baseline_all: bool, ready_delays: list[float]) -> dict[str, Any]:
    from kubesim.testing import start_sandbox

    work = Path(tempfile.mkdtemp(prefix="dm-bench-"))
    results: dict[str, Any] = {
        "clusters": clusters,
        "components": len(NEEDS),
        "reps": reps,
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
    }
    generate(work / "repo", clusters)
    with start_sandbox(work) as sandbox:
        b = Bench(work / "repo", work / "state", sandbox)
        names = [cluster_name(i) for i in range(clusters)]

        # Deploy everything once through the pipeline (also a data point: install of the whole fleet).
        t, _ = _timed(lambda: [b.pipeline.apply(b.source, n, "HEAD", trigger="bench") for n in names])
        results["install_all_seconds"] = round(t, 2)

        # (a) no-op commits: ours, one cluster and all clusters; baseline: upgrade --install everything.
        ours_one, ours_all, ours_writes = [], [], 0
        for i in range(reps):
            (b.repo / "README.md").write_text(f"no-op {i}\n")
            sha = _commit(b.repo, f"no-op {i}")
            sandbox.reset_stats()
            t, plan = _timed(partial(b.pipeline.plan, b.source, names[0], sha))
            assert {a.action.value for a in plan.actions} == {"none"}, plan.to_dict()
            ours_one.append(t)
            (b.repo / "README.md").write_text(f"no-op {i} all\n")
            sha = _commit(b.repo, f"no-op {i} all")
            t, plans = _timed(partial(b.plan_all, names, sha))
            assert all({a.action.value for a in p.actions} == {"none"} for p in plans)
            ours_all.append(t)
            ours_writes += b.writes()
        charts0 = b.charts(names[0])
        sandbox.reset_stats()
        base_one = sum(b.bare("upgrade --install", rel, names[0], chart, vals) for chart, vals, rel in charts0.values())
        base_one_writes = b.writes()
        results["a"] = {
            "ours_one_cluster_median_s": statistics.median(ours_one),
            "ours_all_clusters_median_s": statistics.median(ours_all),
            "ours_writes": ours_writes,
            "baseline_one_cluster_s": base_one,
            "baseline_one_cluster_writes": base_one_writes,
            "ratio_one": base_one / statistics.median(ours_one),
        }
        if baseline_all:
            t0 = time.perf_counter()
            for n in names:
                for chart, vals, rel in b.charts(n).values():
                    b.bare("upgrade --install", rel, n, chart, vals)
            base_all = time.perf_counter() - t0
            results["a"] |= {"baseline_all_clusters_s": base_all, "ratio_all": base_all / statistics.median(ours_all)}
        else:  # measured on one cluster, scaled by the cluster count (stated as such in BENCHMARKS.md)
            results["a"] |= {
                "baseline_all_clusters_s_extrapolated": base_one * clusters,
                "ratio_all_extrapolated": base_one * clusters / statistics.median(ours_all),
            }

        # (b) one changed component: apply end to end vs a bare helm upgrade of the same release.
        target, ns = "glance", names[1]
        ours_b, bare_b = [], []
        values_file = b.repo / "values" / ns / f"{target}.yaml"
        for i in range(reps):
            vals = yaml.safe_load(values_file.read_text())
            vals["conf"]["DEFAULT"]["workers"] = 2 * i + 1
            values_file.write_text(yaml.safe_dump(vals))
            sha = _commit(b.repo, f"{ns} {target} workers {2 * i + 1}")
            t, record = _timed(partial(b.pipeline.apply, b.source, ns, sha, trigger="bench"))
            upgraded = [s.component for s in record.steps if s.action == "upgrade"]
            assert record.status is RunStatus.succeeded and upgraded == [target], record.to_dict()
            ours_b.append(t)
            chart, merged, rel = b.charts(ns)[target]
            merged["conf"]["DEFAULT"]["workers"] = 2 * i + 2
            bare_b.append(b.bare("upgrade", rel, ns, chart, merged))
        results["b"] = {
            "ours_apply_median_s": statistics.median(ours_b),
            "bare_upgrade_median_s": statistics.median(bare_b),
            "ratio": statistics.median(ours_b) / statistics.median(bare_b),
        }

        # (c) fresh install of one cluster vs the critical path of bare installs, at two readiness delays:
        # the sandbox's default (workloads ready after 0.05 s: every helm call is CPU-bound) and 1 s (closer
        # to real pods, where an install mostly waits). Our apply is also measured without the pre-flight
        # render, to show what that safety costs.
        results["c"] = {}
        for delay in ready_delays:
            sandbox.set_ready_delay(delay)
            ours_c, ours_nr, crit_c, runs = [], [], [], []
            for i in range(max(1, reps // 2)):
                tag = f"{int(delay * 1000)}ms-{i}"
                t = b.fresh_apply(f"f{tag}", names[0], render=True)
                t_nr = b.fresh_apply(f"n{tag}", names[0], render=False)
                durations = {}
                for name, (chart, vals, rel) in b.charts(names[0]).items():  # sequential, topological order
                    durations[name] = b.bare("install", rel, f"bare-{tag}", chart, vals)
                ours_c.append(t)
                ours_nr.append(t_nr)
                crit_c.append(critical_path(durations))
                runs.append(
                    {
                        "ours_s": t,
                        "ours_no_render_s": t_nr,
                        "critical_path_s": crit_c[-1],
                        "bare_sum_s": sum(durations.values()),
                        "bare_each_s": durations,
                    }
                )
            results["c"][f"ready_delay_{delay}s"] = {
                "ours_apply_median_s": statistics.median(ours_c),
                "ours_apply_no_render_median_s": statistics.median(ours_nr),
                "critical_path_median_s": statistics.median(crit_c),
                "ratio": statistics.median(ours_c) / statistics.median(crit_c),
                "ratio_no_render": statistics.median(ours_nr) / statistics.median(crit_c),
                "runs": runs,
            }
        sandbox.set_ready_delay(0.05)
    results["loadavg_end"] = os.getloadavg()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, default=60)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--baseline-all", action="store_true", help="run the naive baseline on every cluster")
    parser.add_argument(
        "--ready-delay",
        type=float,
        nargs="+",
        default=[0.05, 1.0],
        help="sandbox readiness delays (seconds) for measurement (c)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "core.json")
    args = parser.parse_args()
    results = run(args.clusters, args.reps, args.baseline_all, args.ready_delay)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
