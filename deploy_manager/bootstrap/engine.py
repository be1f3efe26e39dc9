"""`BootstrapEngine`: a component's bootstrap steps as Kubernetes Jobs, re-run only when their digest changed.

It is the `ComponentHook` of the reconcile executor: called with phase `before` (ahead of the component's
`helm upgrade --install`) and `after` (once the release is ready), it runs that phase's steps strictly
in declared order. For each step:

- skip it when a Job carrying its digest has `Complete=True` in the cluster (unless `always: true`).
  The cluster is the record, so a lost database never re-runs a migration;
- wait for a Job with its digest that is still running (a run interrupted mid-step), instead of
  starting a second one;
- delete a failed Job with its digest (propagation Background) and create it again;
- wait for the Job up to the step's timeout, record the step (`bootstrap:<step>`, with the pod's log
  tail, secrets redacted) in the run, and keep only the newest `history` finished Jobs of the step.

A failed step raises `BootstrapStepFailed` (carrying the log tail): the executor records the component
failed, the helm upgrade after it does not run, and its dependents are blocked. A re-apply starts from
the failed step, since the earlier ones are skipped by digest.

It only acts: what each step needs (done, running, failed, new, always) is decided by the pure
`planner.bootstrap.step_state` from the Jobs the run's snapshot read (one list call per namespace), and
the plan already upgrades an in-sync component whose steps have not all completed. Steps are reported
through `HookContext.emit`; the run owner records them.

Steps run as the chart's bootstrap ServiceAccount (`values.bootstrap.serviceAccount`) in phase `after`, and in
phase `before` too when the chart renders it: the engine then creates it and its namespaced Role/RoleBinding
from the render before the first step (`bootstrap.rbac`), for the install to adopt. So steps that write
through the Kubernetes API (keystone's key Secrets) can run before the pods that need their result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, cast

from deploy_manager.bootstrap import manifests as m
from deploy_manager.bootstrap.etc import pick_etc_data
from deploy_manager.bootstrap.rbac import bootstrap_objects, differs
from deploy_manager.clock import now
from deploy_manager.desired.bootstrap import resolve_image
from deploy_manager.desired.values import secret_values
from deploy_manager.desired.yamlio import load_all_bounded
from deploy_manager.helm.runner import HelmRunner, redact, tail
from deploy_manager.kube.client import KubeClient
from deploy_manager.kube.jobs import JobsApi
from deploy_manager.kube.types import Job
from deploy_manager.models.desired import BootstrapStep, DesiredComponent
from deploy_manager.models.errors import (
    ConfigError,
    DeployManagerError,
    KubeConflict,
    KubeError,
    KubeUnavailable,
    PermanentError,
)
from deploy_manager.models.plan import Reason, StepState
from deploy_manager.models.run import StepRecord, StepStatus
from deploy_manager.planner.bootstrap import step_jobs, step_state
from deploy_manager.reconcile.hooks import HookContext, HookPhase
from deploy_manager.store.sqlite import RunStore

log = logging.getLogger(__name__)

LOG_LINES = 50
ACTION_PREFIX = "bootstrap:"
MSG_DONE = "Job {job} with this step's digest completed"
MSG_NEW = "no completed Job with this step's digest"
MSG_RETRY = "Job {job} with this step's digest failed: running it again"
MSG_ALWAYS = "always: true"
MSG_ADOPT = "Job {job} with this step's digest was still running: waiting for it"


class BootstrapStepFailed(PermanentError):
    """A step's Job failed or timed out; `output_tail` is its pod's log tail (secrets redacted)."""

    def __init__(self, message: str, *, output_tail: str = "", job: str = "") -> None:
        super().__init__(message)
        self.output_tail = output_tail
        self.job = job


@dataclass(frozen=True)
class Backoff:
    """Polling a Job: `initial` seconds, times `factor` after each poll, at most `maximum`."""

    initial: float = 0.05
    factor: float = 1.5
    maximum: float = 2.0


@dataclass(frozen=True)
class Outcome:
    job: str
    ok: bool
    message: str
    log_tail: str
    exit_code: int | None


class BootstrapEngine:
    # The run's snapshot must hold the cluster's bootstrap Jobs for this hook (see Pipeline._run).
    reads_jobs = True

    def __init__(
        self,
        *,
        helm: HelmRunner,
        kube: KubeClient,
        store: RunStore | None = None,
        history: int = 3,
        backoff: Backoff = Backoff(),
        pod_policy: m.JobPodPolicy | None = None,
    ) -> None:
        self.helm = helm
        self.pod_policy = pod_policy or m.JobPodPolicy()
        self.api = JobsApi(kube)
        self.store = store  # unused: the run owner records the steps this engine reports (kept for callers)
        self.history = max(1, history)
        self.backoff = backoff

    # -- the hook -------------------------------------------------------------------------------------
    def __call__(self, phase: HookPhase, ctx: HookContext) -> None:
        comp = ctx.component
        steps = [s for s in comp.bootstrap if s.when == phase.value]
        if phase is HookPhase.before:
            images = {s.name: self._image(ctx, s) for s in comp.bootstrap}  # every step's image, before any write
        else:
            images = {s.name: self._image(ctx, s) for s in steps}
        if not steps:
            return
        cluster = ctx.cluster.name
        secrets = secret_values(comp.values, comp.secret_paths)
        prepared = False
        etc: str | None = None
        # `after` steps run as the chart's bootstrap ServiceAccount; `before` steps too once the engine has
        # created it (with its Role/RoleBinding, from the chart's render) ahead of the install.
        account = _bootstrap_sa(comp.values) if phase is HookPhase.after else None
        for step in steps:
            started, t0 = now(), time.monotonic()
            # The run's snapshot holds this component's Jobs; the decision is the planner's (pure).
            mine = step_jobs(ctx.jobs, cluster, comp.name, step.name)
            state, job = step_state(step, mine)
            if state is StepState.done:
                self._record(ctx, step, StepStatus.skipped, started, t0, Reason("step_done", MSG_DONE.format(job=job)))
                log.info("cluster=%s component=%s step=%s skipped: %s done", cluster, comp.name, step.name, job)
                continue
            if state is StepState.running:
                reason = Reason("step_running", MSG_ADOPT.format(job=job))
            else:
                if not prepared:
                    self.api.ensure_namespace(comp.namespace)
                    etc, ready = self._prepare(ctx, secrets, phase)
                    account = account or ready
                    prepared = True
                job, reason = self._start(ctx, step, state, images[step.name], etc, mine, account)
            log.info("cluster=%s component=%s step=%s job=%s: %s", cluster, comp.name, step.name, job, reason.message)
            outcome = self._wait(comp, step, job, secrets)
            status = StepStatus.succeeded if outcome.ok else StepStatus.failed
            self._record(ctx, step, status, started, t0, reason, outcome)
            self._prune(comp.namespace, step, mine, keep=job)
            if not outcome.ok:
                raise BootstrapStepFailed(
                    f"bootstrap step {step.name} of {comp.name} failed (Job {comp.namespace}/{job}): {outcome.message}",
                    output_tail=outcome.log_tail,
                    job=job,
                )

    # -- steps ----------------------------------------------------------------------------------------
    def _image(self, ctx: HookContext, step: BootstrapStep) -> str:
        image = resolve_image(ctx.component.values, step.image)
        if not image:
            key = f"images.tags.{step.image}" if step.image else "image"
            raise ConfigError(
                f"bootstrap step {step.name}: {key} is not set in the component's values",
                key=f"components.{ctx.component.name}.bootstrap",
            )
        return image

    def _prepare(self, ctx: HookContext, secrets: Collection[str], phase: HookPhase) -> tuple[str | None, str | None]:
        """Render the chart once: the Jobs' config Secret, and (phase `before`) the bootstrap ServiceAccount's
        objects. Returns (config Secret name or None, ServiceAccount the steps may run as or None)."""
        comp = ctx.component
        if not comp.chart.local or not ctx.chart:
            log.info("component=%s: chart %s is remote, Jobs get no config files", comp.name, comp.chart.describe())
            return None, None
        out = self.helm.template(
            release=comp.release, namespace=comp.namespace, chart=ctx.chart, values=comp.values, secrets=secrets
        )
        etc = self._ensure_etc(ctx, pick_etc_data(out, comp.release))
        account = _bootstrap_sa(comp.values)
        if phase is not HookPhase.before or account is None:
            return etc, None
        objects = bootstrap_objects(
            load_all_bounded(out, f"helm template {comp.release}"),
            account,
            release=comp.release,
            namespace=comp.namespace,
        )
        if not objects:  # the chart does not render it: the steps run as it only after the install
            return etc, None
        for body in objects:
            self._ensure_account_object(comp.namespace, body)
        return etc, account

    def _ensure_account_object(self, namespace: str, body: dict[str, Any]) -> None:
        """Create it if absent (helm adopts it at the install); bring a Role's rules or a RoleBinding's subjects
        to the render if they differ (helm would do the same moments later, after the steps needing them)."""
        kind, name = str(body["kind"]), str(body["metadata"]["name"])
        current = self.api.get_account_object(kind, namespace, name)
        if current is None:
            try:
                self.api.create_account_object(namespace, body)
                log.info("namespace=%s: created %s %s for the bootstrap steps (helm adopts it)", namespace, kind, name)
                return
            except KubeConflict:  # created concurrently: compare with what is there
                current = self.api.get_account_object(kind, namespace, name)
        if current is not None and differs(current, body):
            meta = current.get("metadata") or {}
            # Keep whatever ownership the live object has (helm's record of an installed release).
            merged = {**body, "metadata": {**meta, "resourceVersion": meta.get("resourceVersion")}}
            self.api.replace_account_object(namespace, merged)
            log.info("namespace=%s: updated %s %s to the chart's render", namespace, kind, name)

    def _ensure_etc(self, ctx: HookContext, data: dict[str, str] | None) -> str | None:
        """Create/update `<release>-bootstrap-etc` from the rendered chart; None if the chart has no config."""
        comp = ctx.component
        if data is None:
            log.info("component=%s: chart renders no Secret %s-etc, Jobs get no config files", comp.name, comp.release)
            return None
        name = m.etc_secret_name(comp.release)
        body = m.etc_secret(name, comp.namespace, ctx.cluster.name, comp.name, data)
        current = self.api.get_secret(comp.namespace, name)
        if current is None:
            try:
                self.api.create_secret(comp.namespace, body)
                return name
            except KubeConflict:
                current = self.api.get_secret(comp.namespace, name)
        if current is not None and (current.get("data") or {}) != data:
            body["metadata"]["resourceVersion"] = (current.get("metadata") or {}).get("resourceVersion")
            self.api.replace_secret(comp.namespace, body)
        return name

    def _start(
        self,
        ctx: HookContext,
        step: BootstrapStep,
        state: StepState,
        image: str,
        etc: str | None,
        mine: list[Job],
        account: str | None = None,
    ) -> tuple[str, Reason]:
        comp = ctx.component
        sequence: int | None = None
        same = [j for j in mine if _labels(j).get(m.LABEL_DIGEST) == m.digest_label(step.digest)]
        failed = [j for j in same if m.job_failed(j)]
        if state is StepState.always:
            sequence = 1 + max((_sequence(j) for j in mine), default=0)
            reason = Reason("step_always", MSG_ALWAYS)
        elif state is StepState.failed:
            reason = Reason("step_retry", MSG_RETRY.format(job=_name(failed[0])))
        else:
            reason = Reason("step_new", MSG_NEW)
        if state is not StepState.always:
            for job in failed:  # same digest, same name: the failed Job must go before its retry
                self.api.delete_job(comp.namespace, _name(job))
            mine[:] = [j for j in mine if j not in failed]
        name = m.job_name(comp.release, step.name, step.digest, sequence)
        # The chart's bootstrap ServiceAccount when it exists (see __call__); else no API credentials.
        sa = account
        body = m.job_manifest(
            name=name,
            cluster=ctx.cluster.name,
            comp=comp,
            step=step,
            image=image,
            etc_secret=etc,
            service_account=sa,
            commit=ctx.cluster.commit,
            run_id=ctx.run_id,
            sequence=sequence,
            policy=self.pod_policy,
        )
        created = self._create_job(comp.namespace, body)
        self._script(comp.namespace, name, m.script_configmap(name, created, step.rendered))
        mine.append(cast(Job, created))
        return name, reason

    def _script(self, namespace: str, job: str, body: dict[str, Any]) -> None:
        """Create the Job's script ConfigMap; a Job without its script must not linger (it would never start)."""
        try:
            try:
                self.api.create_configmap(namespace, body)
            except KubeConflict:  # the ConfigMap of a deleted predecessor the GC has not removed yet: take it over
                self.api.replace_configmap(namespace, body)
        except DeployManagerError:
            self.api.delete_job(namespace, job)
            raise

    def _create_job(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a Job; a 409 right after deleting its failed predecessor means it is still going away."""
        deadline = time.monotonic() + 30
        delay = self.backoff.initial
        while True:
            try:
                return self.api.create_job(namespace, body)
            except KubeConflict:
                if time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * self.backoff.factor, self.backoff.maximum)

    def _wait(self, comp: DesiredComponent, step: BootstrapStep, job: str, secrets: Collection[str]) -> Outcome:
        deadline = time.monotonic() + step.timeout
        delay = self.backoff.initial
        while True:
            try:
                current = self.api.get_job(comp.namespace, job)
            except KubeUnavailable as exc:  # an API blip must not fail a migration that runs fine: poll on
                log.warning("component=%s step=%s: reading Job %s failed, retrying: %s", comp.name, step.name, job, exc)
                current = {"metadata": {"name": job}}
            if current is None:
                return Outcome(job, False, "the Job was deleted while running", "", None)
            if m.job_finished(current):
                ok = m.job_complete(current)
                log_tail, exit_code = self._logs(comp.namespace, current, secrets)
                return Outcome(job, ok, "completed" if ok else m.job_failure_message(current), log_tail, exit_code)
            if time.monotonic() >= deadline:
                log_tail, exit_code = self._logs(comp.namespace, current, secrets)
                self.api.delete_job(comp.namespace, job)  # the next run starts it afresh
                return Outcome(job, False, f"did not finish within {step.timeout}s", log_tail, exit_code)
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * self.backoff.factor, self.backoff.maximum)

    def _logs(self, namespace: str, job: dict[str, Any], secrets: Collection[str]) -> tuple[str, int | None]:
        return job_log(self.api, namespace, job, secrets)

    def _prune(self, namespace: str, step: BootstrapStep, mine: list[Job], *, keep: str) -> None:
        """Keep the newest `history` Jobs of this step (the current one always); delete the rest."""
        others = sorted((j for j in mine if _name(j) != keep), key=m.creation_key, reverse=True)
        for job in others[self.history - 1 :]:
            if m.job_finished(job):
                self.api.delete_job(namespace, _name(job))

    def _record(
        self,
        ctx: HookContext,
        step: BootstrapStep,
        status: StepStatus,
        started: str,
        t0: float,
        reason: Reason,
        outcome: Outcome | None = None,
    ) -> None:
        if ctx.emit is None:
            return
        comp = ctx.component
        ctx.emit(
            StepRecord(
                component=comp.name,
                release=comp.release,
                namespace=comp.namespace,
                action=ACTION_PREFIX + step.name,
                status=status,
                reasons=(reason,),
                duration=time.monotonic() - t0,
                exit_code=outcome.exit_code if outcome else None,
                output_tail=outcome.log_tail if outcome else "",
                error="" if outcome is None or outcome.ok else f"Job {outcome.job}: {outcome.message}",
                started_at=started,
                finished_at=now(),
            ),
        )


def job_log(api: JobsApi, namespace: str, job: dict[str, Any], secrets: Collection[str]) -> tuple[str, int | None]:
    """The newest pod's log tail (redacted) and its container's exit code; empty if unavailable. Shared by the
    bootstrap steps and the workflow checks, which both run as Jobs.

    Pods are matched by the Job's uid, so a predecessor of the same name (a retried step) never answers.
    """
    uid = (job.get("metadata") or {}).get("uid")
    selector = f"batch.kubernetes.io/controller-uid={uid}" if uid else f"job-name={_name(job)}"
    try:
        pods = api.list_pods(namespace, selector)
        if not pods:
            return "", None
        pod = max(pods, key=m.creation_key)
        text = api.pod_log(namespace, _name(pod), tail_lines=LOG_LINES)
    except KubeError as exc:  # the log is best effort: a pod already gone (404) or an API blip
        log.warning("Job %s/%s: no log: %s", namespace, _name(job), exc)
        return "", None
    return redact(tail(text, LOG_LINES), secrets), _exit_code(pod)


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _sequence(job: Mapping[str, Any]) -> int:
    raw = _labels(job).get(m.LABEL_SEQUENCE, "0")
    return int(raw) if raw.isdigit() else 0


def _bootstrap_sa(values: dict[str, Any]) -> str | None:
    bootstrap = values.get("bootstrap")
    sa = bootstrap.get("serviceAccount") if isinstance(bootstrap, dict) else None
    return str(sa) if sa else None


def _exit_code(pod: dict[str, Any]) -> int | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated") or {}
        if "exitCode" in terminated:
            return int(terminated["exitCode"])
    return None
