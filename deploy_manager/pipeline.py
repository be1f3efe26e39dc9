"""The pipeline of one cluster: what the CLI and the service call. Each call is one `run.Run`.

`Pipeline.plan` never writes to the cluster. `Pipeline.run` is one recorded run (see `deploy_manager.run`):
it returns the run's record and the releases after it, which the caller stores; `Pipeline.apply` is the
same for the CLI and stores them itself. `Pipeline.observe` refreshes the stored releases from the
cluster (the service's periodic observe).
"""

from __future__ import annotations

import logging
from pathlib import Path

from deploy_manager.drift import DriftReport, check_drift, save_policies, targets_of
from deploy_manager.helm.runner import HelmRunner
from deploy_manager.kube.client import KubeClient
from deploy_manager.models.desired import DesiredCluster
from deploy_manager.models.errors import DeployManagerError
from deploy_manager.models.observed import ObservedRelease
from deploy_manager.models.plan import Plan
from deploy_manager.models.run import ReleaseStatus, RunRecord, RunStatus
from deploy_manager.models.smoke import AfterRun, SmokeResult
from deploy_manager.observe import observe as observe_releases
from deploy_manager.plan_diff import ComponentDiff, component_diffs
from deploy_manager.planner.selfmanage import SelfRelease
from deploy_manager.reconcile.cancel import RunCancel
from deploy_manager.reconcile.hooks import ComponentHook
from deploy_manager.reconcile.step import CheckRunner
from deploy_manager.run import Run, RunOutcome, Snapshot, release_statuses, resolve
from deploy_manager.source.git import GitSource, default_state_dir
from deploy_manager.store.sqlite import RunStore

__all__ = ["Pipeline", "RunOutcome", "Snapshot", "release_statuses"]

log = logging.getLogger(__name__)


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
        lease_held: bool = True,
        suspend_namespace: str | None = None,
        self_release: SelfRelease | None = None,
        smoke: CheckRunner | None = None,
        smoke_after_run: AfterRun | str = AfterRun.changed,
    ) -> None:
        self.helm = helm
        self.kube = kube
        self.store = store
        self.max_parallel = max_parallel
        self.hook = hook
        self.cache_dir = cache_dir if cache_dir is not None else default_state_dir() / "charts"
        self.preflight_render = preflight_render
        self.lease_held = lease_held
        # The namespace of the suspend ConfigMap (the Lease's; issue 13); None: suspensions are not read.
        self.suspend_namespace = suspend_namespace
        self.self_release = self_release  # the manager's own release: written last, handed over (issue 15)
        self.smoke_runner = smoke  # runs workflow checks as Jobs (issue 14); None: runs run no check
        self.smoke_after_run = AfterRun(smoke_after_run)

    def _run(self) -> Run:
        return Run(
            helm=self.helm,
            kube=self.kube,
            store=self.store,
            cache_dir=self.cache_dir,
            max_parallel=self.max_parallel,
            hook=self.hook,
            # A bootstrap engine acts on the cluster's Jobs: the snapshot reads them and the plan shows the steps.
            bootstrap_jobs=bool(getattr(self.hook, "reads_jobs", False)),
            preflight_render=self.preflight_render,
            lease_held=self.lease_held,
            suspend_namespace=self.suspend_namespace,
            self_release=self.self_release,
            smoke=self.smoke_runner,
            smoke_after_run=self.smoke_after_run,
        )

    # -- read-only ------------------------------------------------------------------------------------
    def desired(self, source: GitSource, cluster: str, rev: str) -> DesiredCluster:
        return self._run().desired(source, cluster, resolve(source, rev))

    def snapshot(self, source: GitSource, cluster: str, rev: str) -> Snapshot:
        return self._run().snapshot(source, cluster, resolve(source, rev))

    def plan(self, source: GitSource, cluster: str, rev: str) -> Plan:
        """Desired x observed -> ordered actions (bootstrap steps included). Never writes to the cluster."""
        return self.snapshot(source, cluster, rev).plan

    def plan_diff(self, source: GitSource, cluster: str, rev: str) -> tuple[Plan, list[ComponentDiff]]:
        """The plan and, for each component it writes, the deployed manifest against the new render."""
        run = self._run()
        snap = run.snapshot(source, cluster, resolve(source, rev))
        return snap.plan, component_diffs(run, source, snap)

    def drift(self, source: GitSource, cluster: str, rev: str) -> DriftReport:
        """Drift of the cluster's releases, with the drift settings of `rev` (one release list, then one list
        per kind and namespace). The settings are recorded in the state directory for `status`."""
        return self.drift_of(self.desired(source, cluster, rev))

    def drift_of(self, desired: DesiredCluster) -> DriftReport:
        """Drift of the releases of `desired` (its drift settings): reads the cluster only, not git."""
        observed = observe_releases(self.kube, desired.namespaces)
        report = check_drift(self.kube, desired.name, targets_of(desired), observed)
        self.remember_drift_settings(desired)
        return report

    def remember_drift_settings(self, desired: DesiredCluster) -> None:
        try:
            save_policies(self.cache_dir.parent, desired)
        except OSError as exc:
            log.warning("cluster=%s could not record the drift settings: %s", desired.name, exc)

    def observe(self, cluster: str, source: GitSource, rev: str) -> list[ReleaseStatus]:
        """Refresh the store's releases of `cluster` from the cluster (for the service's /releases)."""
        statuses = release_statuses(self.snapshot(source, cluster, rev))
        self.store.replace_releases(cluster, statuses)
        return statuses

    def preflight_check(self, source: GitSource, cluster: str, commit: str, *, trigger: str) -> None:
        """Load, plan and render `commit` (no cluster write) before a caller takes the cluster's Lease, so bad
        input writes nothing, not even the Lease. An error found here is recorded as a failed run, as the run
        itself would, and raised. The run that follows finds the renders in the pre-flight cache."""
        try:
            run = self._run()
            run.preflight(source, run.snapshot(source, cluster, commit), every=True)
        except DeployManagerError as exc:
            run_id = self.store.create_run(cluster=cluster, commit=None, trigger=trigger, status="running")
            self.store.start_run(run_id, commit=commit)
            self.store.finish_run(run_id, RunStatus.failed, error=str(exc))
            raise

    def own_release(self) -> ObservedRelease | None:
        """The newest record of the manager's own release (one list call in its namespace); None if not set."""
        own = self.self_release
        if own is None:
            return None
        return observe_releases(self.kube, [own.namespace]).get(own.id)

    def smoke(
        self,
        source: GitSource,
        cluster: str,
        rev: str,
        *,
        names: list[str] | None = None,
        scheduled: bool = False,
    ) -> list[SmokeResult]:
        """Run the cluster's checks at `rev` now (`names`: only these; `scheduled`: only the scheduled ones) and
        store their results (no run record). Writes nothing but the checks' Jobs."""
        from deploy_manager.checks import run_checks, select

        desired = self.desired(source, cluster, rev)
        checks = select(desired, names, scheduled=scheduled)
        if self.smoke_runner is None:
            raise DeployManagerError("no check runner is configured")
        return run_checks(self.smoke_runner, desired, checks, store=self.store, max_parallel=self.max_parallel)

    # -- writes ---------------------------------------------------------------------------------------
    def run(
        self,
        source: GitSource,
        cluster: str,
        rev: str,
        *,
        trigger: str,
        run_id: int | None = None,
        cancel: RunCancel | None = None,
    ) -> RunOutcome:
        """One recorded run; the caller stores `releases`. Pre-flight errors are recorded on the run, then raised.
        `cancel` lets the caller stop it early (shutdown, a superseding commit)."""
        return self._run()(source, cluster, rev, trigger=trigger, run_id=run_id, cancel=cancel)

    def finish_handover(
        self,
        source: GitSource,
        cluster: str,
        commit: str,
        *,
        run_id: int | None,
        cancel: RunCancel | None = None,
        handed_over_at: str | None = None,
    ) -> RunOutcome:
        """The new pod finishes a handed-over run (see `Run.finish_handover`); the caller stores `releases`."""
        return self._run().finish_handover(
            source, cluster, commit, run_id=run_id, cancel=cancel, handed_over_at=handed_over_at
        )

    def apply(self, source: GitSource, cluster: str, rev: str, *, trigger: str, run_id: int | None = None) -> RunRecord:
        """`run`, storing the releases after it (the CLI's `apply`)."""
        result = self.run(source, cluster, rev, trigger=trigger, run_id=run_id)
        if result.releases is not None:
            self.store.replace_releases(cluster, result.releases)
        return result.record
