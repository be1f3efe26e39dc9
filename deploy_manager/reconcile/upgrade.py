"""Step kind `install` / `upgrade`: bootstrap before, `helm upgrade --install` with our release labels, after.

Returns a StepRecord whatever happens; the helm revision recorded for a failure is the one the release
record shows, so the history agrees with `helm ls`.

A failed helm write is tried again `remediation.retries` times (each retry is a `retried` reason on the
step; so is each retry of a temporary API error inside the helm runner). When the attempts are used up,
the release is remediated (`planner.remediation`): the failed upgrade step is recorded, and the step kind
returns the `rollback`/`uninstall` step, which the executor counts as a failure of the component.
A failed bootstrap step is not remediated: a migration may have run, and rolling the chart back under it
could be worse than the failure.
"""

from __future__ import annotations

import time
from dataclasses import replace

from deploy_manager.clock import now
from deploy_manager.desired.values import secret_values
from deploy_manager.helm.runner import HelmEnded, HelmError, HelmResult
from deploy_manager.logging_setup import log_context
from deploy_manager.models.desired import DesiredCluster, DesiredComponent
from deploy_manager.models.errors import DeployManagerError, TemporaryError
from deploy_manager.models.labels import LABEL_PREFIX
from deploy_manager.models.plan import Action, ActionKind, Reason
from deploy_manager.models.run import RunStatus, StepRecord, StepStatus
from deploy_manager.planner.remediation import remediation_for
from deploy_manager.reconcile.bootstrap import run_phase
from deploy_manager.reconcile.cancel import RunCancel
from deploy_manager.reconcile.hooks import HookPhase
from deploy_manager.reconcile.rollback import rollback
from deploy_manager.reconcile.step import MSG_RETRIED, RunContext, action_step
from deploy_manager.reconcile.uninstall import uninstall


def release_labels(cluster: DesiredCluster, comp: DesiredComponent, *, upgrade: bool = True) -> dict[str, str]:
    """Helm release labels recording what we deployed (values are label-safe: hex and DNS names)."""
    labels = {
        "digest": comp.digest,
        "commit": cluster.commit,
        "cluster": cluster.name,
        "component": comp.name,
        "chart": comp.chart.digest,
        "values": comp.values_digest,
    }
    # An upgrade merges new labels into the old ones, and "null" removes one left by an earlier revision;
    # an install would store "null" literally.
    if comp.bootstrap_digest or upgrade:
        labels["bootstrap"] = comp.bootstrap_digest or "null"
    return {LABEL_PREFIX + k: v for k, v in labels.items()}


def upgrade(action: Action, ctx: RunContext) -> StepRecord:
    """Install or upgrade one component: bootstrap `before` steps, `helm upgrade --install`, `after` steps."""
    comp = ctx.cluster.components[action.component]
    started, t0 = now(), time.monotonic()
    secrets = secret_values(comp.values, comp.secret_paths)
    revision: int | None = None
    exit_code: int | None = None
    tail = ""
    retried: list[Reason] = []
    cancel = ctx.cancel or RunCancel()
    extra: tuple[Reason, ...] = ()

    def note_retries(messages: tuple[str, ...]) -> None:
        for message in messages:
            retried.append(Reason("retried", MSG_RETRIED.format(n=len(retried) + 1, error=message)))

    def step(status: StepStatus, error: str = "", temporary: bool = False) -> StepRecord:
        return action_step(
            action,
            action.action,
            status,
            started=started,
            t0=t0,
            reasons=action.reasons + tuple(retried) + extra,
            helm_revision=revision,
            exit_code=exit_code,
            output_tail=tail,
            error=error,
            temporary=temporary,
        )

    with log_context(component=comp.name, release=comp.release):
        try:
            # A stopped run starts no new bootstrap phase (run_phase checks) or helm command; running ones finish.
            run_phase(HookPhase.before, action, ctx)

            def write() -> HelmResult:
                cancel.check(f"helm {action.action.value}")
                cancel.helm_started(comp.name, comp.digest, f"helm {action.action.value}")
                try:
                    return ctx.helm.upgrade_install(
                        release=comp.release,
                        namespace=comp.namespace,
                        chart=ctx.charts[comp.name],
                        values=comp.values,
                        labels=release_labels(ctx.cluster, comp, upgrade=action.action is ActionKind.upgrade),
                        timeout=comp.timeout,
                        version=comp.chart.version,
                        repo=comp.chart.repo,
                        secrets=secrets,
                        end=lambda: cancel.helm_ended(comp.name),
                    )
                finally:
                    cancel.helm_finished(comp.name)

            attempts = 1 + comp.remediation.retries
            for attempt in range(1, attempts + 1):
                try:
                    result = write()
                    break
                except HelmEnded:
                    raise  # a stopped run neither retries nor remediates: the next run recovers the release
                except HelmError as exc:
                    note_retries(exc.retried)
                    revision, exit_code, tail = exc.revision, exc.exit_code, exc.output_tail
                    if attempt == attempts:
                        failed = step(StepStatus.failed, str(exc), isinstance(exc, TemporaryError))
                        return remediate(action, ctx, failed)
                    note_retries((f"{exc} (revision {exc.revision})" if exc.revision else str(exc),))
            note_retries(result.retried)
            revision, exit_code, tail = result.revision, result.exit_code, result.output_tail
            run_phase(HookPhase.after, action, ctx)
        except HelmEnded as exc:
            revision, exit_code, tail = exc.revision, exc.exit_code, exc.output_tail
            if cancel.status is RunStatus.superseded:
                extra = (Reason("superseded", cancel.reason),)
            return step(StepStatus.failed, f"{exc}: {cancel.reason}".rstrip(": "))
        except DeployManagerError as exc:  # a failed bootstrap step carries its Job's log tail
            tail = getattr(exc, "output_tail", "") or tail
            return step(StepStatus.failed, str(exc), isinstance(exc, TemporaryError))
        except Exception as exc:  # a hook bug must fail this component, not the whole run
            return step(StepStatus.failed, f"{type(exc).__name__}: {exc}")
    return step(StepStatus.succeeded)


def remediate(action: Action, ctx: RunContext, failed: StepRecord) -> StepRecord:
    """After the last failed attempt: record it, then roll back / uninstall as the component's remediation
    says (the returned step); with `on_failure: none`, the failed step itself."""
    comp = ctx.cluster.components[action.component]
    kind = remediation_for(comp.remediation.on_failure, action.last_deployed)
    # Helm failed before it wrote a revision (a render error, a manifest the API rejects): nothing to undo.
    wrote = failed.helm_revision is not None and failed.helm_revision != action.revision
    # Helm refused because another operation holds the release (a person's helm since the plan): not ours to undo.
    busy = "another operation" in failed.error
    if kind is None or not wrote or busy:
        return failed
    ctx.emit(failed)
    cause = f"{action.action.value} failed: {failed.error}"
    if kind is ActionKind.rollback:
        done = rollback(action, ctx, failed_revision=failed.helm_revision, cause=cause)
    else:
        done = uninstall(action, ctx, failed_revision=failed.helm_revision, cause=cause)
    return replace(done, temporary=failed.temporary)
