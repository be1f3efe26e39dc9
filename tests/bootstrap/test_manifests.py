"""The manifests a bootstrap step runs as (pure): names, labels, mounts, env, status reading."""

from __future__ import annotations

import re

import pytest

from deploy_manager.bootstrap import manifests as m
from deploy_manager.models.desired import BootstrapStep, ChartSpec, DesiredComponent
from tests.podsecurity import restricted_violations

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DIGEST = "0123456789abcdef" * 4


def component(values: dict[str, object] | None = None) -> DesiredComponent:
    return DesiredComponent(
        name="keystone",
        release="keystone",
        namespace="openstack",
        chart=ChartSpec(path="charts/openstack/keystone"),
        needs=(),
        timeout=300,
        values=values or {},
        values_files=(),
    )


STEP = BootstrapStep(
    name="db-sync", script="bootstrap/keystone/db-sync.sh.j2", image="db_sync", timeout=900, digest=DIGEST
)


@pytest.mark.parametrize(
    ("release", "step", "sequence", "expected"),
    [
        ("keystone", "db-sync", None, "keystone-db-sync-0123456789"),
        ("keystone", "db-sync", 12, "keystone-db-sync-0123456789-12"),
        ("r" * 40, "s" * 30, None, ("r" * 40 + "-" + "s" * 11)[:52] + "-0123456789"),
        ("a" * 51, "step", None, "a" * 51 + "-0123456789"),  # the truncated prefix loses its trailing dash
    ],
)
def test_job_name_carries_the_digest_and_fits_a_dns_label(
    release: str, step: str, sequence: int | None, expected: str
) -> None:
    name = m.job_name(release, step, DIGEST, sequence)
    assert name == expected
    assert len(name) <= 63 and DNS_LABEL.match(name)


def test_job_names_differ_when_the_digest_differs() -> None:
    assert m.job_name("nova", "db-sync", "a" * 64) != m.job_name("nova", "db-sync", "b" * 64)


def test_secret_env_follows_the_chart_convention_bootstrap_secrets_win() -> None:
    values = {
        "secrets": {"db": {"name": "keystone-db", "key": "password"}, "service-user": {"name": "su", "key": "k"}},
        "bootstrap": {"secrets": {"db": {"name": "override", "key": "pw"}, "admin": {"name": "adm", "key": "p"}}},
    }
    env = m.secret_env(values)
    assert [e["name"] for e in env] == ["SECRET_ADMIN", "SECRET_DB", "SECRET_SERVICE_USER"]
    by_name = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env}
    assert by_name["SECRET_DB"] == {"name": "override", "key": "pw"}


def test_job_manifest_mounts_script_and_config_and_labels_the_step() -> None:
    comp = component({"images": {"pullPolicy": "Always"}, "bootstrap": {"serviceAccount": "ks-bootstrap"}})
    job = m.job_manifest(
        name="keystone-db-sync-0123456789",
        cluster="dev",
        comp=comp,
        step=STEP,
        image="quay.io/x/keystone:1",
        etc_secret="keystone-bootstrap-etc",
        service_account=None,
        commit="c" * 40,
        run_id=7,
    )
    assert job["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "deploy-manager",
        "deploy-manager.io/cluster": "dev",
        "deploy-manager.io/component": "keystone",
        "deploy-manager.io/step": "db-sync",
        "deploy-manager.io/step-digest": DIGEST[:40],
    }
    assert job["metadata"]["annotations"][m.ANNOTATION_DIGEST] == DIGEST
    assert job["metadata"]["annotations"][m.ANNOTATION_RUN] == "7"
    spec = job["spec"]
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] == 900
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    [container] = pod["containers"]
    assert container["image"] == "quay.io/x/keystone:1" and container["imagePullPolicy"] == "Always"
    assert container["command"] == ["/bin/bash", "/bootstrap/script.sh"]
    assert {v["mountPath"] for v in container["volumeMounts"]} == {"/bootstrap", "/etc/keystone/"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["script"]["configMap"]["name"] == "keystone-db-sync-0123456789"
    assert volumes["etc"]["secret"]["secretName"] == "keystone-bootstrap-etc"


def test_job_manifest_without_config_and_with_a_service_account() -> None:
    job = m.job_manifest(
        name="n",
        cluster="dev",
        comp=component(),
        step=STEP,
        image="i",
        etc_secret=None,
        service_account="ks-bootstrap",
        commit="c",
        run_id=None,
        sequence=3,
    )
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "ks-bootstrap" and "automountServiceAccountToken" not in pod
    assert [v["name"] for v in pod["volumes"]] == ["script"]
    assert job["metadata"]["labels"][m.LABEL_SEQUENCE] == "3"
    assert m.ANNOTATION_RUN not in job["metadata"]["annotations"]


def test_script_configmap_is_owned_by_its_job() -> None:
    job = {"metadata": {"name": "j", "namespace": "ns", "uid": "u-1", "labels": {"a": "b"}}}
    cm = m.script_configmap("j", job, "echo hi\n")
    assert cm["data"] == {"script.sh": "echo hi\n"}
    assert cm["metadata"]["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "u-1"}]


@pytest.mark.parametrize(
    ("conditions", "complete", "failed"),
    [
        ([], False, False),
        ([{"type": "Complete", "status": "True"}], True, False),
        ([{"type": "Complete", "status": "False"}], False, False),
        ([{"type": "FailureTarget", "status": "True"}, {"type": "Failed", "status": "True"}], False, True),
    ],
)
def test_job_status(conditions: list[dict[str, str]], complete: bool, failed: bool) -> None:
    job = {"status": {"conditions": conditions}}
    assert m.job_complete(job) is complete
    assert m.job_failed(job) is failed
    assert m.job_finished(job) is (complete or failed)


def test_failure_message_and_creation_order() -> None:
    job = {
        "status": {
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "DeadlineExceeded",
                    "message": "Job was active longer than specified deadline",
                }
            ]
        }
    }
    assert m.job_failure_message(job) == "DeadlineExceeded: Job was active longer than specified deadline"
    a = {"metadata": {"name": "a", "creationTimestamp": "2026-01-01T00:00:01Z", "resourceVersion": "20"}}
    b = {"metadata": {"name": "b", "creationTimestamp": "2026-01-01T00:00:01Z", "resourceVersion": "9"}}
    c = {"metadata": {"name": "c", "creationTimestamp": "2026-01-01T00:00:00Z", "resourceVersion": "30"}}
    assert [o["metadata"]["name"] for o in sorted([a, b, c], key=m.creation_key)] == ["c", "b", "a"]


def _job(values: dict[str, object] | None = None, policy: m.JobPodPolicy | None = None) -> dict[str, object]:
    return m.job_manifest(
        name="n", cluster="dev", comp=component(values), step=STEP, image="i", etc_secret=None,
        service_account=None, commit="c", run_id=None, policy=policy,
    )  # fmt: skip


def test_job_pods_pass_the_restricted_profile_and_carry_resources() -> None:
    import kubernetes_validate

    job = _job()
    kubernetes_validate.validate(job, "1.35.0", strict=True)
    pod = job["spec"]["template"]["spec"]  # type: ignore[index]
    assert restricted_violations(pod) == []
    assert pod["containers"][0]["resources"]["limits"]["memory"]


def test_job_pod_policy_from_settings_then_component_values_key_by_key() -> None:
    policy = m.JobPodPolicy(resources={"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}})
    values = {"bootstrap": {"podSecurityContext": {"runAsUser": 42424, "runAsGroup": 42424},
                            "securityContext": {"readOnlyRootFilesystem": True}}}  # fmt: skip
    pod = _job(values, policy)["spec"]["template"]["spec"]  # type: ignore[index]
    assert pod["securityContext"]["runAsUser"] == 42424
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}  # kept from the default
    [container] = pod["containers"]
    assert container["resources"] == {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]  # read-only root keeps a /tmp
    assert restricted_violations(pod) == []
