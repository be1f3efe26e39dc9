"""The stage table, kwok-style: an input object, the stages that select it in order, the output.

Each case runs every stage of ``STAGES`` that selects the object until none does (what the
engine does, minus the delays) and compares the fields clients read.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from kubesim.controllers.stages import STAGES
from kubesim.controllers.workloads import REVISION, template_hash
from kubesim.store import GR, Store

Obj = dict[str, Any]


@dataclass
class Ctx:
    store: Store = field(default_factory=Store)
    ready_delay: float = 0.0
    unready: bool = False
    failing: bool = False

    def delay_for(self, obj: Obj) -> float:
        return self.ready_delay

    def never_ready(self, obj: Obj) -> bool:
        return self.unready

    def job_fails(self, obj: Obj) -> bool:
        return self.failing


def settle(ctx: Ctx, gr: GR, obj: Obj) -> tuple[Obj, list[str]]:
    """Create (or update) ``obj`` and run selecting stages until the object is stable."""
    meta = obj["metadata"]
    if ctx.store.get(gr, meta["namespace"], meta["name"]) is None:
        ctx.store.create(gr, obj)
    else:
        ctx.store.update(gr, obj)
    ran: list[str] = []
    for _ in range(10):
        live = ctx.store.get(gr, meta["namespace"], meta["name"])
        assert live is not None
        # the progress-deadline stage waits minutes in real time: settle() stops before it
        stage = next((s for s in STAGES if s.gr == gr and s.name != "deployment-deadline"
                      and s.selects(live, ctx)), None)
        if stage is None:
            return live, ran
        new = stage.write(live, ctx)
        assert new is not None
        ctx.store.update(gr, new)
        ran.append(stage.name)
    raise AssertionError(f"stages do not settle: {ran}")


def deployment(image: str = "a:1", replicas: int = 2, generation: int = 1) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1", "generation": generation},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}


def test_deployment_becomes_available_with_one_replicaset() -> None:
    ctx = Ctx()
    live, ran = settle(ctx, ("apps", "deployments"), deployment())
    assert ran == ["deployment-rollout", "deployment-available"]
    status = live["status"]
    assert (status["observedGeneration"], status["replicas"], status["updatedReplicas"], status["readyReplicas"],
            status["availableReplicas"]) == (1, 2, 2, 2, 2)
    conds = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conds == {"Available": ("True", "MinimumReplicasAvailable"),
                     "Progressing": ("True", "NewReplicaSetAvailable")}
    [rs] = ctx.store.list(("apps", "replicasets"))[0]
    pod_hash = template_hash(deployment()["spec"]["template"])
    assert rs["metadata"]["name"] == f"web-{pod_hash}" and rs["metadata"]["labels"]["pod-template-hash"] == pod_hash
    assert rs["status"]["readyReplicas"] == 2 and live["metadata"]["annotations"][REVISION] == "1"


def test_template_change_is_a_rollout_and_scaling_is_not() -> None:
    ctx = Ctx()
    live, _ = settle(ctx, ("apps", "deployments"), deployment())
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 3
    scaled["metadata"]["generation"] = 2
    live, _ = settle(ctx, ("apps", "deployments"), scaled)
    assert live["metadata"]["annotations"][REVISION] == "1" and live["status"]["availableReplicas"] == 3
    rolled = copy.deepcopy(live)
    rolled["spec"]["template"]["spec"]["containers"][0]["image"] = "a:2"
    rolled["metadata"]["generation"] = 3
    live, _ = settle(ctx, ("apps", "deployments"), rolled)
    assert live["metadata"]["annotations"][REVISION] == "2"
    replicasets = {rs["metadata"]["labels"]["pod-template-hash"]: rs["spec"]["replicas"]
                   for rs in ctx.store.list(("apps", "replicasets"))[0]}
    assert replicasets == {template_hash(deployment()["spec"]["template"]): 0,
                           template_hash(rolled["spec"]["template"]): 3}


def test_never_ready_deployment_is_observed_but_unavailable() -> None:
    ctx = Ctx(unready=True)
    live, ran = settle(ctx, ("apps", "deployments"), deployment())
    assert ran == ["deployment-rollout"]
    assert live["status"]["observedGeneration"] == 1 and live["status"]["unavailableReplicas"] == 2
    assert {c["type"]: c["status"] for c in live["status"]["conditions"]}["Available"] == "False"


def test_statefulset_and_daemonset_become_ready() -> None:
    ctx = Ctx()
    sts = deployment()
    sts.update(kind="StatefulSet")
    live, ran = settle(ctx, ("apps", "statefulsets"), sts)
    assert ran == ["statefulset-observe", "statefulset-ready"]
    assert live["status"]["readyReplicas"] == 2 and live["status"]["currentRevision"] == live["status"][
        "updateRevision"]
    ds = deployment()
    ds.update(kind="DaemonSet")
    live, _ = settle(ctx, ("apps", "daemonsets"), ds)
    assert live["status"]["numberReady"] == live["status"]["desiredNumberScheduled"] == 1


def job() -> Obj:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "ns", "uid": "u2",
                                                                  "generation": 1},
            "spec": {"completions": 1, "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}}


def test_job_completes_with_a_succeeded_pod() -> None:
    ctx = Ctx()
    live, ran = settle(ctx, ("batch", "jobs"), job())
    assert ran == ["job-start", "job-finish"]
    assert live["status"]["succeeded"] == 1 and "active" not in live["status"]
    assert {c["type"] for c in live["status"]["conditions"]} == {"SuccessCriteriaMet", "Complete"}
    [pod] = ctx.store.list(("", "pods"))[0]
    assert pod["status"]["phase"] == "Succeeded" and pod["metadata"]["labels"]["job-name"] == "j"


def test_failing_job() -> None:
    ctx = Ctx(failing=True)
    live, _ = settle(ctx, ("batch", "jobs"), job())
    assert live["status"]["failed"] == 1
    assert {c["type"] for c in live["status"]["conditions"]} == {"FailureTarget", "Failed"}
    assert ctx.store.list(("", "pods"))[0][0]["status"]["phase"] == "Failed"


def test_pvc_binds_and_load_balancer_gets_an_address() -> None:
    ctx = Ctx()
    pvc = {"metadata": {"name": "data", "namespace": "ns"}, "spec": {"resources": {"requests": {"storage": "2Gi"}}}}
    live, _ = settle(ctx, ("", "persistentvolumeclaims"), pvc)
    assert live["status"] == {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "2Gi"}}
    svc = {"metadata": {"name": "lb", "namespace": "ns"}, "spec": {"type": "LoadBalancer"}}
    live, _ = settle(ctx, ("", "services"), svc)
    assert live["status"]["loadBalancer"]["ingress"] == [{"ip": "127.0.0.1"}]


def test_never_ready_deployment_hits_its_progress_deadline() -> None:
    ctx = Ctx(unready=True)
    live, ran = settle(ctx, ("apps", "deployments"), deployment())
    deadline = next(s for s in STAGES if s.name == "deployment-deadline")
    assert deadline.selects(live, ctx) and deadline.delay(live, ctx) == 600
    live["spec"]["progressDeadlineSeconds"] = 5
    assert deadline.delay(live, ctx) == 5
    stalled = deadline.write(live, ctx)
    assert stalled is not None
    progressing = next(c for c in stalled["status"]["conditions"] if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert not deadline.selects(stalled, ctx)


def test_workloads_get_pods() -> None:
    ctx = Ctx()
    settle(ctx, ("apps", "deployments"), deployment(replicas=3))
    pods = ctx.store.list(("", "pods"))[0]
    assert len(pods) == 3
    [rs] = ctx.store.list(("apps", "replicasets"))[0]
    assert all(p["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"] for p in pods)
    assert {p["metadata"]["labels"]["pod-template-hash"] for p in pods} == {rs["metadata"]["labels"][
        "pod-template-hash"]}
    sts = deployment(replicas=2)
    sts.update(kind="StatefulSet")
    sts["metadata"].update(name="db", uid="u3")
    sts["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "data"},
                                            "spec": {"resources": {"requests": {"storage": "1Gi"}}}}]
    settle(ctx, ("apps", "statefulsets"), sts)
    names = sorted(p["metadata"]["name"] for p in ctx.store.list(("", "pods"))[0] if p["metadata"]["name"][:3] == "db-")
    assert names == ["db-0", "db-1"]
    claims = sorted(c["metadata"]["name"] for c in ctx.store.list(("", "persistentvolumeclaims"))[0])
    assert claims == ["data-db-0", "data-db-1"]
