"""Step kind `correct_drift` on the sandbox with real helm and kubectl: `drift.mode: correct` re-applies the
release's manifest for what drifted on the next run, records what it corrected, and makes no helm revision."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from deploy_manager.models.desired import DriftPolicy
from deploy_manager.models.plan import Action, ActionKind, Plan, ReleaseState
from deploy_manager.planner.drift import DriftItem, plan_corrections
from deploy_manager.reconcile.correct_drift import applied_object
from tests.corelib import commit, write_values
from tests.test_drift import Env

pytestmark = pytest.mark.helm


@pytest.fixture
def env(tmp_path: Path, sandbox_module: Any, kube_cli_module: Any, helm_bin: Path) -> Env:
    return Env(tmp_path, sandbox_module, kube_cli_module, helm_bin)


def revisions(env: Env, release: str) -> list[int]:
    history = json.loads(env.kube_cli.helm("history", release, "-n", env.ns, "-o", "json").stdout)
    return [int(h["revision"]) for h in history]


def test_mode_correct_restores_drift_on_the_next_run_without_a_helm_revision(env: Env) -> None:
    env.set_drift({"mode": "correct"}, component="keystone")
    env.apply()
    env.kubectl("scale", "deployment", "keystone-api", "--replicas=4")
    env.kubectl("set", "image", "deployment/keystone-api", "api=registry.example/keystone:evil")
    env.kubectl("delete", "configmap", "keystone-conf")
    env.kubectl("scale", "deployment", "glance-api", "--replicas=2")  # glance only detects
    plan = {a.component: a for a in env.pipeline().plan(env.source(), "dev", "HEAD").actions}
    assert plan["keystone"].action is ActionKind.correct_drift and plan["keystone"].state is ReleaseState.drifted
    assert {p for r in plan["keystone"].reasons for p in r.paths} == {
        "<missing>",
        "spec.replicas",
        "spec.template.spec.containers[api].image",
    }
    assert plan["glance"].action is ActionKind.none
    env.sandbox.reset_stats()
    run = env.apply()
    step = next(s for s in run.steps if s.component == "keystone")
    assert step.action == "correct_drift" and step.status.value == "succeeded"
    corrected = [r.message for r in step.reasons if r.code == "drift_corrected"]
    assert corrected == [
        f"re-applied ConfigMap {env.ns}/keystone-conf: missing",
        f"re-applied Deployment {env.ns}/keystone-api: spec.replicas, spec.template.spec.containers[api].image",
    ]
    assert step.helm_revision == 1 and revisions(env, "keystone") == [1]  # no new helm revision
    assert env.sandbox.stats()["writes"] == 2  # the two objects, nothing else
    live = json.loads(env.kubectl("get", "deployment", "keystone-api", "-o", "json"))
    assert live["spec"]["replicas"] == 1
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/keystone:2025.1"
    assert live["metadata"]["annotations"]["meta.helm.sh/release-name"] == "keystone"
    assert env.kubectl("get", "configmap", "keystone-conf", "-o", "name").strip() == "configmap/keystone-conf"
    drift = env.drift()
    assert drift["keystone"] == [] and [i["paths"] for i in drift["glance"]] == [["spec.replicas"]]
    # Nothing left to correct: the next run writes nothing; helm still owns the objects (an upgrade works).
    assert {a.action for a in env.pipeline().plan(env.source(), "dev", "HEAD").actions} == {ActionKind.none}
    write_values(env.root, "dev", "keystone", {"debug": True})
    commit(env.root, "debug")
    run = env.apply()
    assert [(s.component, s.action, s.helm_revision) for s in run.steps if s.action != "none"] == [
        ("keystone", "upgrade", 2)
    ]


def test_plan_corrections_only_for_components_left_alone() -> None:
    item = DriftItem("Deployment", "ns", "api", ("spec.replicas",))
    plan = Plan(
        "dev",
        "c",
        (
            Action("a", "a", "ns", ActionKind.none, state=ReleaseState.in_sync),
            Action("b", "b", "ns", ActionKind.upgrade, state=ReleaseState.out_of_sync),
            Action("c", "c", "ns", ActionKind.none, state=ReleaseState.in_sync),
        ),
    )
    out = {a.component: a for a in plan_corrections(plan, {"a": (item,), "b": (item,)}).actions}
    assert out["a"].action is ActionKind.correct_drift and out["a"].reasons[0].paths == ("spec.replicas",)
    assert out["b"].action is ActionKind.upgrade and out["c"].action is ActionKind.none
    assert DriftPolicy().mode == "detect"


def test_the_applied_object_keeps_helms_release_metadata() -> None:
    item = DriftItem("ConfigMap", "ns", "c", ("data.a",), manifest={"kind": "ConfigMap", "metadata": {"name": "c"}})
    obj = applied_object(item, "keystone", "ns")
    assert obj["metadata"]["annotations"] == {
        "meta.helm.sh/release-name": "keystone",
        "meta.helm.sh/release-namespace": "ns",
    }
    assert obj["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "Helm"}
    assert item.manifest == {"kind": "ConfigMap", "metadata": {"name": "c"}}  # not changed in place
