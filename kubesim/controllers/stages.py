"""The stage table: every simulated controller behaviour, as data (see ``engine.Stage``).

Delays: ``0`` stages model what real controllers do within milliseconds (observe a generation,
create the ReplicaSet, start a Job, bind a PVC); ``ready_delay`` stages model pods becoming ready
or Jobs finishing; a Deployment held unready reports ProgressDeadlineExceeded after its own
``spec.progressDeadlineSeconds`` (default 600), as the real controller does. Fault injection
is consulted by the predicates (a never-ready Deployment is simply never selected by its
"available" stage; a failing Job's "finish" stage writes Failed).
"""

from __future__ import annotations

from typing import Any

from kubesim.controllers import workloads as w
from kubesim.controllers.engine import Stage, StageContext

Obj = dict[str, Any]


def _ready_delay(obj: Obj, ctx: StageContext) -> float:
    return ctx.delay_for(obj)


STAGES: tuple[Stage, ...] = (
    Stage("deployment-rollout", ("apps", "deployments"), w.deployment_needs_rollout, w.deployment_rollout),
    Stage("deployment-available", ("apps", "deployments"), w.deployment_not_available, w.deployment_available,
          _ready_delay),
    Stage("deployment-deadline", ("apps", "deployments"), w.deployment_stalled, w.deployment_deadline_exceeded,
          w.progress_deadline),
    Stage("statefulset-observe", ("apps", "statefulsets"), w.sts_needs_observe, w.sts_observe),
    Stage("statefulset-ready", ("apps", "statefulsets"), w.sts_not_ready, w.sts_ready, _ready_delay),
    Stage("daemonset-ready", ("apps", "daemonsets"), w.ds_not_ready, w.ds_ready, _ready_delay),
    Stage("job-start", ("batch", "jobs"), w.job_not_started, w.job_start),
    Stage("job-finish", ("batch", "jobs"), w.job_running, w.job_finish, _ready_delay),
    Stage("pvc-bind", ("", "persistentvolumeclaims"), w.pvc_pending, w.pvc_bind),
    Stage("pod-run", ("", "pods"), w.pod_not_running, w.pod_run, _ready_delay),
    Stage("service-loadbalancer", ("", "services"), w.lb_service_pending, w.lb_service_assign),
)
