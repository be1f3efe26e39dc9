"""One component's write: hooks before, `helm upgrade --install` with our release labels, hooks after.

Returns a StepRecord whatever happens; the helm revision recorded for a failure is the one the release
record shows, so the history agrees with `helm ls`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from deploy_manager.desired.values import secret_values
from deploy_manager.helm.runner import HelmError, HelmRunner
from deploy_manager.models.desired import DesiredCluster, DesiredComponent
from deploy_manager.models.errors import DeployManagerError
from deploy_manager.models.plan import Action, ActionKind
from deploy_manager.models.run import StepRecord, StepStatus
from deploy_manager.reconcile.hooks import ComponentHook, HookContext, HookPhase
from deploy_manager.store.sqlite import now

LABEL_PREFIX = "deploy-manager.io/"


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


@dataclass
class ReleaseWriter:
    helm: HelmRunner
    cluster: DesiredCluster
    charts: dict[str, str]  # component -> chart dir (local) or chart ref (remote)
    hook: ComponentHook | None = None
    run_id: int | None = None

    def __call__(self, action: Action) -> StepRecord:
        comp = self.cluster.components[action.component]
        ctx = HookContext(
            cluster=self.cluster, component=comp, action=action, run_id=self.run_id, chart=self.charts[comp.name]
        )
        started, t0 = now(), time.monotonic()
        secrets = secret_values(comp.values, comp.secret_paths)
        revision: int | None = None
        exit_code: int | None = None
        tail = ""
        try:
            if self.hook is not None:
                self.hook(HookPhase.before, ctx)
            result = self.helm.upgrade_install(
                release=comp.release,
                namespace=comp.namespace,
                chart=self.charts[comp.name],
                values=comp.values,
                labels=release_labels(self.cluster, comp, upgrade=action.action is ActionKind.upgrade),
                timeout=comp.timeout,
                version=comp.chart.version,
                repo=comp.chart.repo,
                secrets=secrets,
            )
            revision, exit_code, tail = result.revision, result.exit_code, result.output_tail
            if self.hook is not None:
                self.hook(HookPhase.after, ctx)
        except HelmError as exc:
            return self._step(
                action, StepStatus.failed, started, t0, exc.revision, exc.exit_code, exc.output_tail, str(exc)
            )
        except DeployManagerError as exc:  # a failed bootstrap step carries its Job's log tail
            tail = getattr(exc, "output_tail", "") or tail
            return self._step(action, StepStatus.failed, started, t0, revision, exit_code, tail, str(exc))
        except Exception as exc:  # a hook bug must fail this component, not the whole run
            msg = f"{type(exc).__name__}: {exc}"
            return self._step(action, StepStatus.failed, started, t0, revision, exit_code, tail, msg)
        return self._step(action, StepStatus.succeeded, started, t0, revision, exit_code, tail, "")

    def _step(
        self,
        action: Action,
        status: StepStatus,
        started: str,
        t0: float,
        revision: int | None,
        exit_code: int | None,
        tail: str,
        error: str,
    ) -> StepRecord:
        return StepRecord(
            component=action.component,
            release=action.release,
            namespace=action.namespace,
            action=action.action.value,
            status=status,
            reasons=action.reasons,
            helm_revision=revision,
            duration=time.monotonic() - t0,
            exit_code=exit_code,
            output_tail=tail,
            error=error,
            started_at=started,
            finished_at=now(),
        )
