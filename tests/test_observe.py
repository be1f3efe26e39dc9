"""Decoding Helm release Secrets: newest revision only, our labels, Helm's own fields."""

from __future__ import annotations

import base64
import gzip
import json
import time
from pathlib import Path
from typing import Any

import pytest

from deploy_manager.kube.client import KubeClient
from deploy_manager.models.observed import ReleaseId
from deploy_manager.observe import decode_release, newest_revisions, observe, to_observed

FIXTURE = Path(__file__).parent / "kubesim" / "fixtures" / "helm414_secret_release_update.pb"


def helm_secret(
    name: str,
    rev: int,
    status: str,
    *,
    ns: str = "os",
    labels: dict[str, str] | None = None,
    config: dict[str, Any] | None = None,
    description: str = "Upgrade complete",
) -> dict[str, Any]:
    release = {
        "name": name,
        "version": rev,
        "namespace": ns,
        "config": config or {},
        "info": {"status": status, "description": description, "last_deployed": "2026-01-01T00:00:00Z"},
        "chart": {"metadata": {"name": name, "version": "0.1.0"}},
    }
    helm_encoded = base64.b64encode(gzip.compress(json.dumps(release).encode()))  # what helm stores
    return {
        "metadata": {
            "name": f"sh.helm.release.v1.{name}.v{rev}",
            "namespace": ns,
            "labels": {"owner": "helm", "name": name, "version": str(rev), "status": status, **(labels or {})},
        },
        "data": {"release": base64.b64encode(helm_encoded).decode()},  # and the API's own base64
    }


def test_newest_revision_of_each_release() -> None:
    secrets = [
        helm_secret("ks", 1, "superseded"),
        helm_secret("ks", 10, "deployed"),
        helm_secret("ks", 9, "superseded"),
        helm_secret("gl", 1, "failed"),
        helm_secret("ks", 2, "deployed", ns="other"),
    ]
    newest = newest_revisions(secrets)
    assert {rid: int(s["metadata"]["labels"]["version"]) for rid, s in newest.items()} == {
        ReleaseId("os", "ks"): 10,
        ReleaseId("os", "gl"): 1,
        ReleaseId("other", "ks"): 2,
    }


def test_to_observed_reads_helm_fields_and_our_labels() -> None:
    secret = helm_secret(
        "ks",
        4,
        "deployed",
        description="Rollback to 2",
        config={"a": {"b": 1}},
        labels={"deploy-manager.io/digest": "d" * 40, "deploy-manager.io/commit": "c" * 40, "team": "x"},
    )
    obs = to_observed(secret)
    assert (obs.name, obs.namespace, obs.revision, obs.status) == ("ks", "os", 4, "deployed")
    assert (obs.chart_name, obs.chart_version, obs.description) == ("ks", "0.1.0", "Rollback to 2")
    assert obs.config == {"a": {"b": 1}} and obs.digest == "d" * 40 and obs.commit == "c" * 40
    assert obs.labels == {"digest": "d" * 40, "commit": "c" * 40}


def test_decodes_a_secret_written_by_real_helm_4() -> None:
    from kubesim.codecs import decode_protobuf  # test-only: the sandbox's decoder of helm's wire format

    secret = decode_protobuf(FIXTURE.read_bytes())
    release = decode_release(secret["data"]["release"])
    assert release["name"] == "r1" and release["info"]["status"] == "uninstalling"
    obs = to_observed({**secret, "metadata": {**secret["metadata"], "namespace": "default"}})
    assert obs.chart_name == "empty" and obs.revision == 2


@pytest.mark.helm
def test_observe_twelve_releases_with_ten_revisions_in_one_request(sandbox: Any) -> None:
    kube = KubeClient(kubeconfig=Path(sandbox.kubeconfig))
    kube.core.create_namespace({"metadata": {"name": "obs-12x10"}})
    config = {"conf": {"x": "y" * 2000}}  # releases carry values (and in reality manifests): not tiny
    for r in range(12):
        for rev in range(1, 11):
            secret = helm_secret(
                f"rel{r}",
                rev,
                "deployed" if rev == 10 else "superseded",
                ns="obs-12x10",
                config=config,
                labels={"deploy-manager.io/digest": f"d{rev}"},
            )
            kube.core.create_namespaced_secret("obs-12x10", {**secret, "type": "helm.sh/release.v1"})
    sandbox.reset_stats()
    t0 = time.perf_counter()
    found = observe(kube, ["obs-12x10"])
    elapsed = time.perf_counter() - t0
    assert sandbox.stats()["requests"] == 1
    assert len(found) == 12 and {o.revision for o in found.values()} == {10}
    assert {o.digest for o in found.values()} == {"d10"} and {o.status for o in found.values()} == {"deployed"}
    assert elapsed < 1.0, elapsed


class _Secrets:
    """Only what `observe` calls: one list of release Secrets."""

    def __init__(self, secrets: list[dict[str, Any]]) -> None:
        self.secrets = secrets

    def list_release_secrets(self, namespaces: list[str] | None) -> list[dict[str, Any]]:
        return self.secrets


def test_last_deployed_revision_and_whether_our_labels_are_fresh_or_merged() -> None:
    ours_v1 = {"deploy-manager.io/digest": "aaa", "deploy-manager.io/commit": "c1"}
    ours_v2 = {"deploy-manager.io/digest": "bbb", "deploy-manager.io/commit": "c2"}
    secrets = [
        # ks: deployed 1, failed 2, pending 3 written by us (new labels) -> back to 1
        helm_secret("ks", 1, "superseded", labels=ours_v1),
        helm_secret("ks", 2, "failed", labels=ours_v1),
        helm_secret("ks", 3, "pending-upgrade", labels=ours_v2),
        # gl: a person's helm upgrade: our labels merged in from revision 1, unchanged
        helm_secret("gl", 1, "deployed", labels=ours_v1),
        helm_secret("gl", 2, "pending-upgrade", labels=ours_v1),
        # nv: never deployed
        helm_secret("nv", 1, "pending-install", labels=ours_v2),
    ]
    seen = observe(_Secrets(secrets), ["os"])  # type: ignore[arg-type]
    ks, gl, nv = (seen[ReleaseId("os", n)] for n in ("ks", "gl", "nv"))
    assert (ks.revision, ks.last_deployed, ks.ours) == (3, 1, True)
    assert (gl.revision, gl.last_deployed, gl.inherited_labels, gl.ours) == (2, 1, True, False)
    assert (nv.revision, nv.last_deployed, nv.ours) == (1, None, True)
