"""Decoding Helm release Secrets: newest revision only, our labels, Helm's own fields."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

from deploy_manager.models.observed import ReleaseId
from deploy_manager.observe import decode_release, newest_revisions, to_observed

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
