"""One run of one commit, owned by one object: resolve -> snapshot -> plan -> pre-flight -> execute -> record.

`Run` is the only writer of a run's record: it starts the run once (with its commit), adds each step as the
executor or a bootstrap step reports it, and finishes it once. Data flows forward:

- the commit is resolved once (a full sha given by the service is not resolved again);
- one `Snapshot` holds the desired state, the release records (one list call) and the cluster's bootstrap
  Jobs (one list call per namespace, only when a bootstrap engine is wired), and the one `Plan` made from
  them, bootstrap steps included (`planner.bootstrap`);
- the executor dispatches each action to its step kind (`reconcile/`), which returns `StepRecord`s;
- the post-run release statuses are derived from the snapshot, the steps and one fresh read of the release
  records (only if something was written), without planning again. `RunOutcome.releases` carries them to
  the caller (service or CLI), which stores them.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from deploy_manager.desired.charts import chart_info, export_chart
from deploy_manager.desired.loader import cluster_file, load_cluster
from deploy_manager.desired.previous import previous_needs
from deploy_manager.desired.values import secret_values
from deploy_manager.drift import check_drift, targets_of
from deploy_manager.helm.runner import ChartRenderError, HelmRunner
from deploy_manager.kube.client import KubeClient
from deploy_manager.kube.suspend import SuspendStore
from deploy_manager.kube.types import Job
from deploy_manager.models.desired import DesiredCluster, DesiredComponent
from deploy_manager.models.errors import ChartError, DeployManagerError, ReleaseRefused
from deploy_manager.models.observed import ObservedRelease, ReleaseId
from deploy_manager.models.plan import ActionKind, Plan, ReleaseState
from deploy_manager.models.run import ReleaseStatus, RunRecord, RunStatus, StepRecord, StepStatus
from deploy_manager.models.smoke import ACTION_PREFIX as CHECK_PREFIX
from deploy_manager.models.smoke import AfterRun, result_of_step, step_check_status
from deploy_manager.models.suspend import Suspensions
from deploy_manager.observe import observe as observe_releases
from deploy_manager.observe import observe_jobs, observe_with_orphans
from deploy_manager.planner.bootstrap import plan_bootstrap
from deploy_manager.planner.drift import DriftItem, plan_corrections
from deploy_manager.planner.freeze import plan_orphans
from deploy_manager.planner.graph import topo_waves
from deploy_manager.planner.plan import make_plan
from deploy_manager.planner.release_guard import refusal_message
from deploy_manager.planner.selfmanage import TRIGGER_HANDOVER, SelfRelease, handover_summary
from deploy_manager.planner.smoke import check_record, end_actions, gate_plan, run_status, summary
from deploy_manager.planner.state import determine_state
from deploy_manager.reconcile.cancel import RunCancel
from deploy_manager.reconcile.executor import component_status, dispatch, execute
from deploy_manager.reconcile.hooks import ComponentHook
from deploy_manager.reconcile.selfmanage import HandoverResult, execute_with_handover, verify_step, write_own_release
from deploy_manager.reconcile.step import CheckRunner, RunContext
from deploy_manager.source.git import GitSource, is_full_sha
from deploy_manager.store.sqlite import RunStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """Everything one plan was computed from, and the plan."""

    desired: DesiredCluster
    observed: dict[ReleaseId, ObservedRelease]
    plan: Plan
    jobs: tuple[Job, ...] = ()
    # Issue 13: our releases whose component left cluster.yaml, and the suspend ConfigMap (None: not read).
    orphans: tuple[ObservedRelease, ...] = ()
    suspensions: Suspensions | None = None
    # Drifted objects of the `drift.mode: correct` components the plan corrects (correct_drift).
    drift: dict[str, tuple[DriftItem, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class RunOutcome:
    record: RunRecord
    # The releases after the run; None when they could not be read (the stored copy is then left as it was).
    releases: list[ReleaseStatus] | None
    # The run failed, and only on temporary errors (the API's 5xx/429, a dropped connection): the service
    # re-queues it with backoff.
    temporary: bool = False


def resolve(source: GitSource, rev: str) -> str:
    """A full sha is already resolved (the service resolved the branch head); anything else is resolved once."""
    return rev if is_full_sha(rev) else source.resolve(rev)


@dataclass
class Run:
    """The run owner's dependencies; `snapshot` for read-only callers, `__call__` for one recorded run."""

    helm: HelmRunner
    kube: KubeClient
    store: RunStore
    cache_dir: Path
    max_parallel: int = 4
    hook: ComponentHook | None = None
    # Read the bootstrap Jobs into the snapshot (a bootstrap engine is wired and will act on them).
    bootstrap_jobs: bool = False
    preflight_render: bool = True
    # This manager holds (or, for a plan, would take) the cluster's Lease: a release left pending by one of
    # our own operations is then provably not being written, and the plan unlocks it.
    lease_held: bool = True
    # Where the suspend ConfigMap lives (the Lease's namespace); None: suspensions are not read (library use).
    suspend_namespace: str | None = None
    # The manager's own release (the service in its chart's pod): written last without waiting on itself.
    self_release: SelfRelease | None = None
    # Workflow checks (issue 14): the Job runner (None: no check runs) and DM_SMOKE_AFTER_RUN.
    smoke: CheckRunner | None = None
    smoke_after_run: AfterRun = AfterRun.changed

    # -- observe and decide (never writes) ------------------------------------------------------------
    def desired(self, source: GitSource, cluster: str, commit: str) -> DesiredCluster:
        desired = load_cluster(source, commit, cluster)
        topo_waves({n: list(c.needs) for n, c in desired.components.items()}, file=cluster_file(cluster))
        return desired

    def snapshot(self, source: GitSource, cluster: str, commit: str) -> Snapshot:
        desired = self.desired(source, cluster, commit)
        observed, orphans = observe_with_orphans(self.kube, desired.name, desired.namespaces, desired.components)
        suspensions = None
        if self.suspend_namespace is not None:  # read once per run: a suspend during a run applies to the next
            suspensions = SuspendStore(self.kube, cluster=desired.name, namespace=self.suspend_namespace).read()
        jobs: list[Job] = []
        if self.bootstrap_jobs:
            namespaces = [c.namespace for c in desired.components.values() if c.bootstrap]
            if namespaces:
                jobs = observe_jobs(self.kube, desired.name, namespaces)
        plan = make_plan(desired, observed, lease_held=self.lease_held, suspensions=suspensions)
        if self.bootstrap_jobs:
            plan = plan_bootstrap(desired, plan, jobs)
        if orphans:
            declared: dict[str, tuple[str, ...] | None] = {}
            if desired.prune:  # the order matters only for uninstalls: read each release's own cluster.yaml
                declared = previous_needs(source, cluster, [(o.labels["component"], o.commit) for o in orphans])
            plan = plan_orphans(plan, desired, orphans, previous_needs=declared, suspensions=suspensions)
        drift = self.drift_to_correct(desired, observed, plan)
        if drift:
            plan = plan_corrections(plan, drift)
        return Snapshot(desired, observed, plan, tuple(jobs), tuple(orphans), suspensions, drift)

    def drift_to_correct(
        self, desired: DesiredCluster, observed: dict[ReleaseId, ObservedRelease], plan: Plan
    ) -> dict[str, tuple[DriftItem, ...]]:
        """The drifted objects of the components with `drift.mode: correct` that the plan leaves alone (one list
        per kind and namespace they use). A failed check corrects nothing this run; it never fails the run."""
        names = [
            a.component
            for a in plan.actions
            # Not a suspended component (never written) nor an orphan (no longer in cluster.yaml).
            if a.action is ActionKind.none
            and a.state is not ReleaseState.suspended
            and a.component in desired.components
            and desired.components[a.component].drift.mode == "correct"
        ]
        if not names:
            return {}
        targets = [t for t in targets_of(desired) if t.component in names]
        try:
            report = check_drift(self.kube, desired.name, targets, observed)
        except DeployManagerError as exc:
            log.warning("cluster=%s drift check before the run failed, nothing corrected: %s", desired.name, exc)
            return {}
        return {name: c.items for name, c in report.components.items() if c.items}

    # -- one recorded run -----------------------------------------------------------------------------
    def __call__(
        self,
        source: GitSource,
        cluster: str,
        rev: str,
        *,
        trigger: str,
        run_id: int | None = None,
        cancel: RunCancel | None = None,
    ) -> RunOutcome:
        """Resolve, plan and execute `rev`; record the run. Pre-flight errors are recorded on the run, then raised."""
        if run_id is None:
            run_id = self.store.create_run(cluster=cluster, commit=None, trigger=trigger, status="running")
        with self.fails_run(run_id):
            commit = resolve(source, rev)
            self.store.start_run(run_id, commit=commit)
            snap = self.snapshot(source, cluster, commit)
            charts = self.preflight(source, snap)

        checks = snap.desired.smoke if self.smoke is not None else ()
        plan = gate_plan(snap.plan, checks, self.smoke_after_run)  # gate checks become nodes of the plan
        remediated: set[str] = set()

        def record(step: StepRecord) -> None:
            step = check_record(step, checks)
            if step.action in (ActionKind.rollback.value, ActionKind.uninstall.value):
                remediated.add(step.component)
            self.store.add_step(run_id, step)
            check_status = step_check_status(step.action, step.reasons)
            if check_status is not None:
                sla = next((c.sla for c in checks if c.action == step.action), None)
                self.store.add_smoke(result_of_step(cluster, run_id, step, check_status, sla))
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

        ctx = self.context(snap, plan, charts, run_id, record, cancel)
        handover = HandoverResult([])
        with self.fails_run(run_id):
            if self.self_release is not None:  # the manager's own release is written last, handed over (issue 15)
                handover = execute_with_handover(
                    plan,
                    self.self_release,
                    run_action=dispatch(ctx),
                    write_own=lambda action: write_own_release(action, ctx),
                    max_parallel=self.max_parallel,
                    on_step=record,
                    cancel=cancel,
                )
                steps = handover.steps
            else:
                steps = execute(plan, dispatch(ctx), max_parallel=self.max_parallel, on_step=record, cancel=cancel)
            steps = [check_record(s, checks) for s in steps]
            status, error = outcome(steps)
            # A handed-over run's end checks are left to the next run: this pod is being replaced.
            if checks and not handover.handed_over and not (cancel is not None and cancel.stopped):
                status, error, steps = self._end_checks(ctx, plan, steps, remediated, status, error)
        if handover.handed_over and self.self_release is not None:
            status, error = RunStatus.handed_over, handover_summary(self.self_release.id, handover.deferred, error)
        elif cancel is not None and cancel.stopped:
            status, error = stopped_outcome(snap.plan, steps, cancel, status, error)
        self.store.finish_run(run_id, status, error=error)
        releases = self.releases_after(snap, steps)
        run = self.store.get_run(run_id)
        assert run is not None
        return RunOutcome(run, releases, temporary=status is RunStatus.failed and only_temporary(steps))

    @contextlib.contextmanager
    def fails_run(self, run_id: int) -> Iterator[None]:
        """Whatever escapes the block ends the run `failed`, saying why, then goes on up: the record never stays
        `running` behind an error (our own errors keep their message; anything else is named by its type)."""
        try:
            yield
        except DeployManagerError as exc:
            self.store.finish_run(run_id, RunStatus.failed, error=str(exc))
            raise
        except BaseException as exc:
            self.store.finish_run(run_id, RunStatus.failed, error=f"{type(exc).__name__}: {exc}")
            raise

    def context(
        self,
        snap: Snapshot,
        plan: Plan,
        charts: dict[str, str],
        run_id: int,
        emit: Callable[[StepRecord], None],
        cancel: RunCancel | None,
    ) -> RunContext:
        """What every step kind of a run gets: one place, so a run and a handed-over run's second half give the
        step kinds the same (the kube client for prune and correct_drift, the drift to correct, the checks)."""
        return RunContext(
            helm=self.helm,
            cluster=snap.desired,
            charts=charts,
            run_id=run_id,
            hook=self.hook,
            jobs=snap.jobs,
            emit=emit,
            cancel=cancel,
            kube=self.kube,
            smoke=self.smoke,
            plan=plan,
            drift=snap.drift,
        )

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
        """The new pod's half of a handed-over run (`run_id`; None: record a new `handover` run, the store lost
        it): verify the own release (at `handed_over_at`, default `commit`), then run what the run has not
        started yet, at `commit`. The run's status comes from all its steps, the old pod's included."""
        own = self.self_release
        if own is None:
            raise ValueError("finish_handover needs the manager's own release (DM_SELF_RELEASE)")
        if run_id is None:
            run_id = self.store.create_run(cluster=cluster, commit=commit, trigger=TRIGGER_HANDOVER, status="running")
        with self.fails_run(run_id):
            self.store.start_run(run_id, commit=commit)
            snap = self.snapshot(source, cluster, commit)
            before = self.store.get_run(run_id)
            earlier = list(before.steps) if before is not None else []
            own_action = next((a for a in snap.plan.actions if ReleaseId(a.namespace, a.release) == own.id), None)
            verified = verify_step(own, own_action, snap.observed.get(own.id), handed_over_at or commit)
            self.store.add_step(run_id, verified)
            log.info(
                "cluster=%s handed-over run %s: own release %s %s", cluster, run_id, own.id, verified.reasons[0].message
            )
            done = {s.component: component_status(s) for s in earlier}
            done[verified.component] = verified.status  # a release that did not come up fails its dependents
            rest = Plan(
                snap.plan.cluster, snap.plan.commit, tuple(a for a in snap.plan.actions if a.component not in done)
            )
            full, snap = snap, dataclasses.replace(snap, plan=rest)
            charts = self.preflight(source, snap)

        def record(step: StepRecord) -> None:
            self.store.add_step(run_id, step)

        ctx = self.context(snap, rest, charts, run_id, record, cancel)
        with self.fails_run(run_id):  # the own release is verified: the rest runs with the usual waits
            steps = execute(
                rest, dispatch(ctx), max_parallel=self.max_parallel, on_step=record, cancel=cancel, settled=done
            )
        status, error = outcome([*earlier, verified, *steps])
        if cancel is not None and cancel.stopped:
            status, error = stopped_outcome(rest, steps, cancel, status, error)
        self.store.finish_run(run_id, status, error=error)
        releases = self.releases_after(full, [verified, *steps])
        run = self.store.get_run(run_id)
        assert run is not None
        return RunOutcome(run, releases, temporary=status is RunStatus.failed and only_temporary(steps))

    def _end_checks(
        self,
        ctx: RunContext,
        plan: Plan,
        steps: list[StepRecord],
        remediated: set[str],
        status: RunStatus,
        error: str,
    ) -> tuple[RunStatus, str, list[StepRecord]]:
        """The ungated checks, once the components are settled; one that does not pass makes a run whose
        components all succeeded `degraded`."""
        settled = {s.component: component_status(s) for s in steps if not s.action.startswith(CHECK_PREFIX)}
        settled.update({name: StepStatus.failed for name in remediated})
        ends = end_actions(plan, ctx.cluster.smoke, self.smoke_after_run, settled)
        if not ends:
            return status, error, steps
        end_plan = Plan(cluster=plan.cluster, commit=plan.commit, actions=ends)
        done = execute(end_plan, dispatch(ctx), max_parallel=self.max_parallel, on_step=ctx.emit, cancel=ctx.cancel)
        done = [check_record(s, ctx.cluster.smoke) for s in done]
        every = {
            s.action.removeprefix(CHECK_PREFIX): st
            for s in steps + done
            if (st := step_check_status(s.action, s.reasons)) is not None
        }
        new_status = run_status(status, (step_check_status(s.action, s.reasons) for s in done))
        if new_status is RunStatus.degraded:
            error = summary(every)  # "1 of 6 checks failed: server-boot": every check of the run counted
        return new_status, error, steps + done

    def releases_after(self, snap: Snapshot, steps: list[StepRecord]) -> list[ReleaseStatus] | None:
        if not any(s.status in (StepStatus.succeeded, StepStatus.failed) for s in steps):
            return release_statuses(snap)  # nothing ran: the snapshot is current
        try:  # the release records are the truth (one list call)
            observed = observe_releases(self.kube, snap.desired.namespaces)
        except DeployManagerError as exc:
            log.warning("cluster=%s could not refresh releases after the run: %s", snap.desired.name, exc)
            return None
        return statuses_after_run(snap, steps, observed)

    def preflight(self, source: GitSource, snap: Snapshot, *, every: bool = False) -> dict[str, str]:
        """Export the chart of every write action and render it (`helm template`) before any write.

        A chart or values-schema error, or a refused OpenStack release change (planner.release_guard), then
        fails the run before anything is written (the CLI exits 2),
        naming the component and helm's template file and line or schema key. A render that passed is
        remembered under the state directory by (chart digest, values digest, release, namespace), so a
        repeated commit, a retry or an unchanged component costs no render. Renders run in parallel (each a
        helm process); the first failure in plan order is raised.

        One exception, for speed (a render costs about as much as the upgrade itself): a run whose only write
        is one `helm upgrade --install` with nothing before it (no `before` bootstrap step, no unlock) leaves
        the render to helm, which renders and validates the values before it writes anything. `every=True`
        (the CLI's check before it takes the Lease) renders that one too.
        Returns component -> what to pass helm as the chart (a local directory or a remote ref).
        """
        refusal = refusal_message(snap.desired.name, snap.plan.actions)
        if refusal is not None:  # issue 17: a downgrade or a skipped release writes nothing, not even the Lease
            raise ReleaseRefused(refusal)
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
            if not self._rendered(comp).exists():
                to_render.append(comp)
        writes = [a for a in snap.plan.actions if a.writes]
        helm_renders_first = (
            len(writes) == 1
            and writes[0].action is not ActionKind.unlock
            and not any(s.when == "before" for s in desired.components[writes[0].component].bootstrap)
        )
        if not self.preflight_render or not to_render or (helm_renders_first and not every):
            return charts

        def render(comp: DesiredComponent) -> ChartError | None:
            try:
                self.render(comp, charts[comp.name])
            except ChartRenderError as exc:
                return ChartError(f"{comp.chart.path} (component {comp.name}): {exc}")
            return None

        with ThreadPoolExecutor(max_workers=max(1, self.max_parallel), thread_name_prefix="dm-render") as pool:
            ctx = contextvars.copy_context()  # render threads log with the run's context too
            for error in pool.map(lambda comp: ctx.copy().run(render, comp), to_render):
                if error is not None:
                    raise error
        return charts

    def render(self, comp: DesiredComponent, chart: str) -> str:
        """`helm template` of one component, kept in the pre-flight cache: the marker holds the manifest (mode
        0600, like the git mirror beside it, which holds the same values), so `plan --diff` reads it back."""
        manifest = self.helm.template(
            release=comp.release,
            namespace=comp.namespace,
            chart=chart,
            values=comp.values,
            secrets=secret_values(comp.values, comp.secret_paths),
        )
        marker = self._rendered(comp)
        marker.parent.mkdir(parents=True, exist_ok=True)
        tmp = marker.with_name(f".{marker.name}.{os.getpid()}.{threading.get_ident()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(manifest)
        os.replace(tmp, marker)  # atomic: a reader never sees half a manifest
        return manifest

    def rendered_manifest(self, source: GitSource, commit: str, comp: DesiredComponent) -> str:
        """The new render of a component with a chart in the repo: from the pre-flight cache, else rendered
        now (and cached). An empty marker left by an older version is rendered again."""
        marker = self._rendered(comp)
        with contextlib.suppress(FileNotFoundError):
            text = marker.read_text()
            if text:
                return text
        assert comp.chart.path is not None
        info = chart_info(source, commit, comp.chart.path)
        return self.render(comp, str(export_chart(source, commit, info, self.cache_dir)))

    def _rendered(self, comp: DesiredComponent) -> Path:
        """The marker of a render that passed: keyed by what the render reads (chart, values, name, namespace)."""
        key = hashlib.sha256(
            "\0".join((comp.chart.digest, comp.values_digest, comp.release, comp.namespace)).encode()
        ).hexdigest()
        return self.cache_dir / "rendered" / key[:2] / key


def outcome(steps: list[StepRecord]) -> tuple[RunStatus, str]:
    """The run's status and one-line error from its steps. A gate check that did not pass fails its
    component (the check's step names it); a check blocked behind a failed component adds nothing."""
    comps = [s for s in steps if not s.action.startswith(CHECK_PREFIX)]
    bad_checks = [s for s in steps if s.action.startswith(CHECK_PREFIX) and s.status is StepStatus.failed]
    if not bad_checks and all(component_status(s) in (StepStatus.succeeded, StepStatus.skipped) for s in comps):
        return RunStatus.succeeded, ""
    failed = sorted(
        {s.component for s in comps if component_status(s) is StepStatus.failed} | {s.component for s in bad_checks}
    )
    blocked = sorted(s.component for s in comps if s.status is StepStatus.blocked)
    checks = sorted(s.action.removeprefix(CHECK_PREFIX) for s in bad_checks)
    parts = [
        f"failed: {', '.join(failed)}" if failed else "",
        f"blocked: {', '.join(blocked)}" if blocked else "",
        f"checks failed: {', '.join(checks)}" if checks else "",
    ]
    return RunStatus.failed, "; ".join(p for p in parts if p)


def only_temporary(steps: list[StepRecord]) -> bool:
    """Did every failed component fail on a temporary error? (blocked ones only follow a failed need)"""
    failed = [s for s in steps if component_status(s) is StepStatus.failed]
    return bool(failed) and all(s.temporary for s in failed)


def stopped_outcome(
    plan: Plan, steps: list[StepRecord], cancel: RunCancel, status: RunStatus, error: str
) -> tuple[RunStatus, str]:
    """A stopped run that did not finish everything is `interrupted` or `superseded`, naming what did not start."""
    done = {s.component for s in steps}
    not_started = sorted(a.component for a in plan.actions if a.component not in done)
    if status is RunStatus.succeeded and not not_started:
        return status, error  # it finished all the same
    parts = [cancel.reason, error, f"not started: {', '.join(not_started)}" if not_started else ""]
    return cancel.status, "; ".join(p for p in parts if p)


def _status(component: str, obs: ObservedRelease, state: ReleaseState, commit: str | None) -> ReleaseStatus:
    return ReleaseStatus(
        component=component,
        release=obs.name,
        namespace=obs.namespace,
        chart=obs.chart_name,
        chart_version=obs.chart_version,
        revision=obs.revision,
        status=obs.status,
        commit=commit,
        digest=obs.digest,
        state=state.value,
        updated=obs.updated,
        deployed_commit=obs.commit,
    )


def release_statuses(snap: Snapshot) -> list[ReleaseStatus]:
    """The store's release rows from one snapshot. A release the plan leaves alone (action `none`) is at the
    snapshot's commit, even if helm last wrote it at an older one (a push that does not touch it, README-only);
    `deployed_commit` keeps the commit helm recorded when it last wrote the release."""
    out: list[ReleaseStatus] = []
    orphans = {o.id: o for o in snap.orphans}
    for action in snap.plan.actions:
        rid = ReleaseId(action.namespace, action.release)
        if action.state is ReleaseState.orphaned:
            if rid in orphans:  # at the commit it was last deployed at: this commit does not declare it
                out.append(_status(action.component, orphans[rid], action.state, orphans[rid].commit))
            continue
        obs = snap.observed.get(rid)
        if obs is not None:
            # A suspended release is at the commit it was last written at, whatever the new commit says.
            quiet = action.action is ActionKind.none and action.state is not ReleaseState.suspended
            out.append(_status(action.component, obs, action.state, snap.desired.commit if quiet else obs.commit))
    return out


def statuses_after_run(
    snap: Snapshot, steps: list[StepRecord], observed: dict[ReleaseId, ObservedRelease]
) -> list[ReleaseStatus]:
    """The release rows after a run, from the pre-run plan, the steps and the re-read release records.

    A component whose step wrote nothing keeps the plan's verdict. One that was written is judged again
    from its release record alone (`determine_state`, pure); if its step did not succeed and it has
    bootstrap steps, a release in sync by its labels still has a step to finish, so it is out of sync, as
    the next plan would say.
    """
    by_component: dict[str, StepRecord] = {s.component: s for s in steps}
    out: list[ReleaseStatus] = []
    orphans = {o.id: o for o in snap.orphans}
    for action in snap.plan.actions:
        rid = ReleaseId(action.namespace, action.release)
        if action.state is ReleaseState.orphaned:
            pruned = by_component.get(action.component)
            if rid in orphans and (pruned is None or pruned.status is not StepStatus.succeeded):
                out.append(_status(action.component, orphans[rid], action.state, orphans[rid].commit))
            continue  # pruned: gone
        obs = observed.get(rid)
        if obs is None:
            continue
        step = by_component.get(action.component)
        state: ReleaseState
        if step is None or step.status in (StepStatus.skipped, StepStatus.blocked):
            state, quiet = action.state, action.action is ActionKind.none and action.state is not ReleaseState.suspended
        else:
            comp = snap.desired.components[action.component]
            state, _ = determine_state(comp, obs)
            if state is ReleaseState.in_sync and step.status is not StepStatus.succeeded and comp.bootstrap:
                state = ReleaseState.out_of_sync
            quiet = state is ReleaseState.in_sync
        out.append(_status(action.component, obs, state, snap.desired.commit if quiet else obs.commit))
    return out
