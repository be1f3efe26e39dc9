"""Step kind `install` / `upgrade`: bootstrap before, `helm upgrade --install` with our release labels, after.

Returns a StepRecord whatever happens; the helm revision recorded for a failure is the one the release
record shows, so the history agrees with `helm ls`.
"""

from __future__ import annotations

import time

from deploy_manager.clock import now
from deploy_manager.desired.values import secret_values
from deploy_manager.helm.runner import HelmEnded, HelmError
from deploy_manager.logging_setup import log_context
from deploy_manager.models.desired import DesiredCluster, DesiredComponent
from deploy_manager.models.errors import DeployManagerError
from deploy_manager.models.labels import LABEL_PREFIX
from deploy_manager.models.plan import Action, ActionKind, Reason
from deploy_manager.models.run import RunStatus, StepRecord, StepStatus
from deploy_manager.reconcile.bootstrap import run_phase
from deploy_manager.reconcile.cancel import RunCancel
from deploy_manager.reconcile.hooks import HookPhase
from deploy_manager.reconcile.step import RunContext


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
    cancel = ctx.cancel or RunCancel()
    extra: tuple[Reason, ...] = ()

    def step(status: StepStatus, error: str = "") -> StepRecord:
        return StepRecord(
            component=action.component,
            release=action.release,
            namespace=action.namespace,
            action=action.action.value,
            status=status,
            reasons=action.reasons + extra,
            helm_revision=revision,
            duration=time.monotonic() - t0,
            exit_code=exit_code,
            output_tail=tail,
            error=error,
            started_at=started,
            finished_at=now(),
        )

    with log_context(component=comp.name, release=comp.release):
        try:
            # A stopped run starts no new bootstrap phase (run_phase checks) or helm command; running ones finish.
            run_phase(HookPhase.before, action, ctx)
            cancel.check(f"helm {action.action.value}")
            cancel.helm_started(comp.name, comp.digest)
            try:
                result = ctx.helm.upgrade_install(
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
            revision, exit_code, tail = result.revision, result.exit_code, result.output_tail
            run_phase(HookPhase.after, action, ctx)
        except HelmEnded as exc:
            revision, exit_code, tail = exc.revision, exc.exit_code, exc.output_tail
            if cancel.status is RunStatus.superseded:
                extra = (Reason("superseded", cancel.reason),)
            return step(StepStatus.failed, f"{exc}: {cancel.reason}".rstrip(": "))
        except HelmError as exc:
            revision, exit_code, tail = exc.revision, exc.exit_code, exc.output_tail
            return step(StepStatus.failed, str(exc))
        except DeployManagerError as exc:  # a failed bootstrap step carries its Job's log tail
            tail = getattr(exc, "output_tail", "") or tail
            return step(StepStatus.failed, str(exc))
        except Exception as exc:  # a hook bug must fail this component, not the whole run
            return step(StepStatus.failed, f"{type(exc).__name__}: {exc}")
    return step(StepStatus.succeeded)
