"""The engine's rules on one small component (real helm, sandbox): bounded history, `always`, timeouts,
secrets redacted in log tails, the config Secret the Jobs mount.

The component `svc` has a chart rendering `svc-etc` and two steps: `migrate` (before, reads
`conf.svc.database`) and `announce` (after, `always: true`).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy_manager.bootstrap import manifests as m
from deploy_manager.bootstrap.engine import ACTION_PREFIX, BootstrapEngine
from deploy_manager.desired.loader import load_cluster
from deploy_manager.helm.runner import HelmRunner
from deploy_manager.kube.client import KubeClient
from deploy_manager.kube.jobs import JobsApi
from deploy_manager.models.errors import ConfigError
from deploy_manager.models.run import RunRecord, RunStatus, StepRecord, StepStatus
from deploy_manager.pipeline import Pipeline
from deploy_manager.source.git import GitSource
from deploy_manager.store.sqlite import RunStore
from kubesim.testing import RunningSandbox
from tests.corelib import commit, init_repo, write, write_chart, write_cluster, write_values

NS = "rules"
TOKEN = "s3cr3t-t0ken-value"
ETC = """\
apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-etc
type: Opaque
stringData:
  svc.conf: |
    [database]
    connection = {{ .Values.conf.svc.database.connection }}
"""
MIGRATE = """\
#!/bin/bash
set -euo pipefail
# migrate the database of {{ component }}
svc-manage --config-file /etc/{{ component }}/svc.conf db sync
echo token={{ values.conf.svc.token }}
"""
ANNOUNCE = "#!/bin/bash\necho {{ release }} is up in {{ namespace }}\n"


@dataclass
class Small:
    sandbox: RunningSandbox
    repo: Path
    pipeline: Pipeline
    kube: KubeClient

    def apply(self) -> RunRecord:
        return self.pipeline.apply(GitSource(str(self.repo)), "dev", "main", trigger="test")

    def jobs(self, step: str) -> list[dict[str, Any]]:
        items, _ = self.sandbox.state.store.list(("batch", "jobs"), NS)
        return [j for j in items if j["metadata"]["labels"][m.LABEL_STEP] == step]

    def set_connection(self, value: str) -> None:
        write_values(self.repo, "dev", "svc", values(value))
        commit(self.repo, f"connection {value}")


def values(connection: str) -> dict[str, Any]:
    return {
        "images": {"tags": {"tool": "registry.local/svc:1"}},
        "conf": {"svc": {"database": {"connection": connection}, "token": TOKEN}},
    }


@pytest.fixture
def small(sandbox: RunningSandbox, tmp_path: Path, helm_bin: Path) -> Iterator[Small]:
    repo = init_repo(tmp_path / "repo")
    chart = write_chart(repo, "charts/svc")
    write(chart / "templates" / "secret-etc.yaml", ETC)
    write(repo / "bootstrap" / "svc" / "migrate.sh.j2", MIGRATE)
    write(repo / "bootstrap" / "svc" / "announce.sh.j2", ANNOUNCE)
    steps = [
        {"name": "migrate", "image": "tool", "inputs": ["conf.svc.database"], "timeout": 30},
        {"name": "announce", "when": "after", "image": "tool", "always": True},
    ]
    spec = {"namespace": NS, "components": {"svc": {"chart": "charts/svc", "bootstrap": steps}}}
    write_cluster(repo, "dev", spec)
    write_values(repo, "dev", "svc", values("mysql://db/svc0"))
    commit(repo, "svc")
    helm = HelmRunner(str(helm_bin), kubeconfig=sandbox.kubeconfig)
    kube = KubeClient(kubeconfig=sandbox.kubeconfig)
    store = RunStore(tmp_path / "state" / "deploy-manager.db")
    engine = BootstrapEngine(helm=helm, kube=kube, store=store, history=3)
    pipeline = Pipeline(helm=helm, kube=kube, store=store, hook=engine, cache_dir=tmp_path / "c")
    yield Small(sandbox, repo, pipeline, kube)
    store.close()
    kube.close()


def step(run: RunRecord, name: str) -> StepRecord:
    return next(s for s in run.steps if s.action == ACTION_PREFIX + name)


def test_history_is_bounded_and_always_steps_get_a_fresh_job_each_time(small: Small) -> None:
    for i in range(5):
        if i:
            small.set_connection(f"mysql://db/svc{i}")
        run = small.apply()
        assert run.status is RunStatus.succeeded, run.error
        assert step(run, "migrate").status is StepStatus.succeeded
        assert step(run, "announce").status is StepStatus.succeeded

    migrate = small.jobs("migrate")
    announce = small.jobs("announce")
    assert len(migrate) == 3 and len(announce) == 3
    newest = max(migrate, key=lambda j: int(j["metadata"]["resourceVersion"]))
    script = small.sandbox.state.store.get(("", "configmaps"), NS, newest["metadata"]["name"])
    assert script is not None and "svc-manage" in script["data"]["script.sh"]
    assert sorted(int(j["metadata"]["labels"]["deploy-manager.io/sequence"]) for j in announce) == [3, 4, 5]
    # The ConfigMaps and Pods of deleted Jobs go with them (owner references, background propagation).
    names = {j["metadata"]["name"] for j in migrate + announce}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        cms, _ = small.sandbox.state.store.list(("", "configmaps"), NS)
        scripts = {c["metadata"]["name"] for c in cms if c["metadata"]["name"] not in ("kube-root-ca.crt", "svc-conf")}
        if scripts == names:
            break
        time.sleep(0.05)
    assert scripts == names


@pytest.mark.kubesim_only("needs a pod log that names the image (kubesim's synthetic one); kwok serves one "
                          "fixed line for every pod, so there is nothing to redact")
def test_values_at_secret_paths_never_reach_a_recorded_log_tail(small: Small) -> None:
    # The sandbox's pod log names the image; declaring the image's value path secret must hide it.
    spec_path = small.repo / "values" / "dev" / "cluster.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec["components"]["svc"]["secrets"] = ["images.tags.tool"]
    spec_path.write_text(yaml.safe_dump(spec))
    commit(small.repo, "the image reference is secret")
    run = small.apply()
    assert run.status is RunStatus.succeeded, run.error
    tail = step(run, "migrate").output_tail
    assert "runs: /bin/bash /bootstrap/script.sh" in tail
    assert "registry.local/svc:1" not in tail and "(image ***)" in tail


@pytest.mark.kubesim_only("fails a product-rendered bootstrap Job by name through /_sandbox/")
def test_jobs_mount_the_rendered_config_before_the_chart_exists(small: Small) -> None:
    small.sandbox.inject_fault(type="job-fail", namespace=NS, name="svc-migrate-*")
    run = small.apply()
    assert run.status is RunStatus.failed
    store = small.sandbox.state.store
    assert store.get(("", "secrets"), NS, "svc-etc") is None  # the chart was never installed
    etc = store.get(("", "secrets"), NS, "svc-bootstrap-etc")
    assert etc is not None
    conf = base64.b64decode(etc["data"]["svc.conf"]).decode()
    assert "connection = mysql://db/svc0" in conf
    [job] = small.jobs("migrate")
    pod = job["spec"]["template"]["spec"]
    assert {"name": "etc", "secret": {"secretName": "svc-bootstrap-etc", "defaultMode": 0o444}} in pod["volumes"]

    small.sandbox.clear_faults()
    assert small.apply().status is RunStatus.succeeded
    chart_etc = store.get(("", "secrets"), NS, "svc-etc")
    bootstrap_etc = store.get(("", "secrets"), NS, "svc-bootstrap-etc")
    assert chart_etc is not None and bootstrap_etc is not None
    assert chart_etc["data"] == bootstrap_etc["data"]  # the same bytes the chart renders


@pytest.mark.kubesim_only("keeps a Job running with kubesim's readiness delay")
def test_a_step_that_outlives_its_timeout_fails_and_its_job_is_removed(small: Small) -> None:
    spec_path = small.repo / "values" / "dev" / "cluster.yaml"
    spec_path.write_text(spec_path.read_text().replace("timeout: 30", "timeout: 1"))
    commit(small.repo, "short timeout")
    small.sandbox.set_ready_delay(5)
    started = time.monotonic()
    run = small.apply()
    assert time.monotonic() - started < 4
    assert run.status is RunStatus.failed
    failed = step(run, "migrate")
    assert failed.status is StepStatus.failed and "did not finish within 1s" in failed.error
    assert small.jobs("migrate") == []


def test_an_unknown_image_key_fails_before_any_write(small: Small) -> None:
    spec_path = small.repo / "values" / "dev" / "cluster.yaml"
    spec_path.write_text(spec_path.read_text().replace("image: tool", "image: toool", 1))
    commit(small.repo, "typo")
    small.sandbox.reset_stats()
    with pytest.raises(ConfigError, match=r"cluster\.yaml: components\.svc\.bootstrap\.0\.image: images\.tags\.toool"):
        small.apply()
    assert small.sandbox.stats()["writes"] == 0


def test_a_changed_script_alone_plans_an_upgrade_and_reruns_only_that_step(small: Small) -> None:
    assert small.apply().status is RunStatus.succeeded
    [old] = small.jobs("migrate")
    script = small.repo / "bootstrap" / "svc" / "migrate.sh.j2"
    script.write_text(script.read_text() + "svc-manage db online_data_migrations\n")
    commit(small.repo, "one more migration")

    plan = small.pipeline.plan(GitSource(str(small.repo)), "dev", "main")
    action = plan.action_for("svc")
    assert action.action.value == "upgrade"
    assert [r.code for r in action.reasons] == ["bootstrap_changed"]
    run = small.apply()

    assert run.status is RunStatus.succeeded, run.error
    assert step(run, "migrate").status is StepStatus.succeeded
    migrate = small.jobs("migrate")
    assert len(migrate) == 2 and old["metadata"]["name"] in {j["metadata"]["name"] for j in migrate}
    new = next(j for j in migrate if j["metadata"]["name"] != old["metadata"]["name"])
    cm = small.sandbox.state.store.get(("", "configmaps"), NS, new["metadata"]["name"])
    assert cm is not None and cm["data"]["script.sh"].endswith("svc-manage db online_data_migrations\n")


@pytest.mark.kubesim_only("keeps a Job running with kubesim's readiness delay")
def test_a_job_left_running_by_an_interrupted_run_is_waited_for_not_duplicated(small: Small) -> None:
    source = GitSource(str(small.repo))
    desired = load_cluster(source, source.resolve("main"), "dev")
    comp = desired.components["svc"]
    migrate = comp.bootstrap[0]
    name = m.job_name(comp.release, migrate.name, migrate.digest)
    body = m.job_manifest(
        name=name,
        cluster="dev",
        comp=comp,
        step=migrate,
        image="registry.local/svc:1",
        etc_secret=None,
        service_account=None,
        commit=desired.commit,
        run_id=None,
    )
    api = JobsApi(small.kube)
    api.ensure_namespace(NS)
    small.sandbox.set_ready_delay(0.5)
    uid = api.create_job(NS, body)["metadata"]["uid"]

    run = small.apply()

    assert run.status is RunStatus.succeeded, run.error
    record = step(run, "migrate")
    assert [r.code for r in record.reasons] == ["step_running"] and record.status is StepStatus.succeeded
    assert [j["metadata"]["uid"] for j in small.jobs("migrate")] == [uid]


def test_deleting_a_steps_job_makes_the_next_apply_run_it_again(small: Small) -> None:
    assert small.apply().status is RunStatus.succeeded
    [old] = small.jobs("migrate")
    assert JobsApi(small.kube).delete_job(NS, old["metadata"]["name"])

    plan = small.pipeline.plan(GitSource(str(small.repo)), "dev", "main")
    assert [r.code for r in plan.action_for("svc").reasons] == ["bootstrap_incomplete"]
    run = small.apply()

    assert run.status is RunStatus.succeeded, run.error
    assert step(run, "migrate").status is StepStatus.succeeded
    [new] = small.jobs("migrate")
    assert new["metadata"]["name"] == old["metadata"]["name"] and new["metadata"]["uid"] != old["metadata"]["uid"]


@pytest.mark.kubesim_only("injects API errors through /_sandbox/")
def test_api_errors_while_waiting_for_a_job_are_retried(small: Small) -> None:
    small.sandbox.inject_fault(type="fail-writes", resource="jobs", verbs=["get"], count=3, code=503)
    run = small.apply()
    assert run.status is RunStatus.succeeded, run.error
    assert step(run, "migrate").status is StepStatus.succeeded
    assert small.sandbox.stats()["by_resource"]["jobs.batch"]["get"] >= 4  # 3 failed reads, then the answer


def test_a_stale_script_configmap_of_the_same_name_is_taken_over(small: Small) -> None:
    # A retried step's predecessor was deleted, but the garbage collector has not removed its ConfigMap yet.
    source = GitSource(str(small.repo))
    comp = load_cluster(source, source.resolve("main"), "dev").components["svc"]
    name = m.job_name(comp.release, comp.bootstrap[0].name, comp.bootstrap[0].digest)
    api = JobsApi(small.kube)
    api.ensure_namespace(NS)
    stale = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"x": "old"}}
    api.create_configmap(NS, stale)

    run = small.apply()

    assert run.status is RunStatus.succeeded, run.error
    [job] = small.jobs("migrate")
    cm = small.sandbox.state.store.get(("", "configmaps"), NS, name)
    assert cm is not None and set(cm["data"]) == {"script.sh"}
    assert [o["uid"] for o in cm["metadata"]["ownerReferences"]] == [job["metadata"]["uid"]]
