"""The pipeline of one commit: source -> desired -> observe -> plan -> execute -> record.

`Pipeline.plan` never writes to the cluster. `Pipeline.apply` detects every error it can before the
first helm write (unknown revision, YAML/schema errors, unknown chart path, needs cycle, unreachable
cluster, a chart that does not render), records the run, executes the plan, and refreshes the
store's view of the cluster's releases from the release records afterwards.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from deploy_manager.desired.charts import chart_info, export_chart
from deploy_manager.desired.loader import cluster_file, load_cluster
from deploy_manager.desired.values import secret_values
from deploy_manager.helm.runner import ChartRenderError, HelmRunner
from deploy_manager.kube.client import KubeClient
from deploy_manager.models.desired import DesiredCluster, DesiredComponent
from deploy_manager.models.errors import ChartError, DeployManagerError
from deploy_manager.models.observed import ObservedRelease, ReleaseId
from deploy_manager.models.plan import ActionKind, Plan
from deploy_manager.models.run import ReleaseStatus, RunRecord, RunStatus, StepRecord, StepStatus
from deploy_manager.observe import observe as observe_releases
from deploy_manager.planner.graph import topo_waves
from deploy_manager.planner.plan import make_plan
from deploy_manager.reconcile.executor import execute
from deploy_manager.reconcile.hooks import ComponentHook, PlanRefiningHook
from deploy_manager.reconcile.upgrade import ReleaseWriter
from deploy_manager.source.git import GitSource, default_state_dir
from deploy_manager.store.sqlite import RunStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """Everything one plan was computed from."""

    desired: DesiredCluster
    observed: dict[ReleaseId, ObservedRelease]
    plan: Plan


class Pipeline:
    def __init__(
        self,
        *,
        helm: HelmRunner,
        kube: KubeClient,
        store: RunStore,
        max_parallel: int = 4,
        hook: ComponentHook | None = None,
        cache_dir: Path | None = None,
        preflight_render: bool = True,
    ) -> None:
        self.helm = helm
        self.kube = kube
        self.store = store
        self.max_parallel = max_parallel
        self.hook = hook
        self.cache_dir = cache_dir if cache_dir is not None else default_state_dir() / "charts"
        self.preflight_render = preflight_render

    # -- read-only ------------------------------------------------------------------------------------
    def desired(self, source: GitSource, cluster: str, rev: str) -> DesiredCluster:
        commit = source.resolve(rev)
        desired = load_cluster(source, commit, cluster)
        topo_waves({n: list(c.needs) for n, c in desired.components.items()}, file=cluster_file(cluster))
        return desired

    def snapshot(self, source: GitSource, cluster: str, rev: str) -> Snapshot:
        desired = self.desired(source, cluster, rev)
        observed = observe_releases(self.kube, desired.namespaces)
        return Snapshot(desired, observed, self._plan(desired, observed))

    def _plan(self, desired: DesiredCluster, observed: dict[ReleaseId, ObservedRelease]) -> Plan:
        plan = make_plan(desired, observed)
        if isinstance(self.hook, PlanRefiningHook):  # bootstrap: in sync, yet a step has not completed
            plan = self.hook.refine_plan(desired, plan)
        return plan

    def plan(self, source: GitSource, cluster: str, rev: str) -> Plan:
        """Desired x observed -> ordered actions. Never writes to the cluster."""
        return self.snapshot(source, cluster, rev).plan

    def observe(self, cluster: str, source: GitSource, rev: str) -> list[ReleaseStatus]:
        """Refresh the store's releases of `cluster` from the cluster (for the service's /releases)."""
        snap = self.snapshot(source, cluster, rev)
        statuses = release_statuses(snap)
        self.store.replace_releases(cluster, statuses)
        return statuses

    # -- writes ---------------------------------------------------------------------------------------
    def apply(self, source: GitSource, cluster: str, rev: str, *, trigger: str, run_id: int | None = None) -> RunRecord:
        """Plan and execute; record the run. Pre-flight errors are recorded on the run, then raised."""
        if run_id is None:
            run_id = self.store.create_run(cluster=cluster, commit=None, trigger=trigger, status="running")
        self.store.start_run(run_id, commit=None)
        try:
            snap = self.snapshot(source, cluster, rev)
            charts = self.preflight(source, snap)
        except DeployManagerError as exc:
            self.store.finish_run(run_id, RunStatus.failed, error=str(exc))
            raise
        except BaseException as exc:
            self.store.finish_run(run_id, RunStatus.failed, error=f"{type(exc).__name__}: {exc}")
            raise
        desired = snap.desired
        self.store.start_run(run_id, commit=desired.commit)
        writer = ReleaseWriter(helm=self.helm, cluster=desired, charts=charts, hook=self.hook, run_id=run_id)

        def record(step: StepRecord) -> None:
            self.store.add_step(run_id, step)
            log.info(
                "cluster=%s component=%s namespace=%s release=%s action=%s status=%s revision=%s",
                cluster,
                step.component,
                step.namespace,
                step.release,
                step.action,
                step.status.value,
                step.helm_revision,
            )

        try:
            steps = execute(snap.plan, writer, max_parallel=self.max_parallel, on_step=record)
        except BaseException as exc:
            self.store.finish_run(run_id, RunStatus.failed, error=f"{type(exc).__name__}: {exc}")
            raise
        ok = all(s.status in (StepStatus.succeeded, StepStatus.skipped) for s in steps)
        failed = [s.component for s in steps if s.status is StepStatus.failed]
        blocked = [s.component for s in steps if s.status is StepStatus.blocked]
        error = ""
        if not ok:
            error = "; ".join(
                part
                for part in (
                    f"failed: {', '.join(sorted(failed))}" if failed else "",
                    f"blocked: {', '.join(sorted(blocked))}" if blocked else "",
                )
                if part
            )
        self.store.finish_run(run_id, RunStatus.succeeded if ok else RunStatus.failed, error=error)
        if not any(s.status in (StepStatus.succeeded, StepStatus.failed) for s in steps):
            self.store.replace_releases(cluster, release_statuses(snap))  # nothing ran: the snapshot is current
        else:
            try:  # the release records are the truth; refresh the store's copy (one list call)
                observed = observe_releases(self.kube, desired.namespaces)
                self.store.replace_releases(
                    cluster, release_statuses(Snapshot(desired, observed, self._plan(desired, observed)))
                )
            except DeployManagerError as exc:
                log.warning("cluster=%s could not refresh releases after the run: %s", cluster, exc)
        record_ = self.store.get_run(run_id)
        assert record_ is not None
        return record_

    def preflight(self, source: GitSource, snap: Snapshot) -> dict[str, str]:
        """Export the charts of every write action and, if there are several, render them before any write.

        Renders run in parallel (each is a separate helm process); the first failure in plan order is
        raised. Returns component -> what to pass helm as the chart (a local directory or a remote ref).
        """
        charts: dict[str, str] = {}
        desired = snap.desired
        to_render: list[DesiredComponent] = []
        for action in snap.plan.actions:
            if not action.writes:
                continue
            comp = desired.components[action.component]
            if comp.chart.path is None:
                charts[comp.name] = str(comp.chart.ref)
                continue  # rendering a remote chart means a download: not a cheap pre-flight check
            info = chart_info(source, desired.commit, comp.chart.path)
            charts[comp.name] = str(export_chart(source, desired.commit, info, self.cache_dir))
            to_render.append(comp)
        # With a single write, `helm upgrade` renders before it writes anything, so a separate render
        # would only repeat that check; with several, rendering all of them first keeps one broken chart
        # from leaving the cluster half-applied.
        if not self.preflight_render or len(to_render) < 2:
            return charts

        def render(comp: DesiredComponent) -> ChartError | None:
            try:
                self.helm.template(
                    release=comp.release,
                    namespace=comp.namespace,
                    chart=charts[comp.name],
                    values=comp.values,
                    secrets=secret_values(comp.values, comp.secret_paths),
                )
            except ChartRenderError as exc:
                return ChartError(f"{comp.chart.path} (component {comp.name}): {exc}")
            return None

        with ThreadPoolExecutor(max_workers=max(1, self.max_parallel), thread_name_prefix="dm-render") as pool:
            for error in pool.map(render, to_render):
                if error is not None:
                    raise error
        return charts


def release_statuses(snap: Snapshot) -> list[ReleaseStatus]:
    """The store's release rows from one snapshot. A release the plan leaves alone (action `none`) is at the
    snapshot's commit, even if helm last wrote it at an older one (a push that does not touch it, README-only);
    `deployed_commit` keeps the commit helm recorded when it last wrote the release."""
    out: list[ReleaseStatus] = []
    for action in snap.plan.actions:
        obs = snap.observed.get(ReleaseId(action.namespace, action.release))
        if obs is None:
            continue
        out.append(
            ReleaseStatus(
                component=action.component,
                release=obs.name,
                namespace=obs.namespace,
                chart=obs.chart_name,
                chart_version=obs.chart_version,
                revision=obs.revision,
                status=obs.status,
                commit=snap.desired.commit if action.action is ActionKind.none else obs.commit,
                digest=obs.digest,
                state=action.state.value,
                updated=obs.updated,
                deployed_commit=obs.commit,
            )
        )
    return out
