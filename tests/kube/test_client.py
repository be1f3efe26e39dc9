"""KubeClient against the sandbox: one list request per observation, errors as KubeUnavailable."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from deploy_manager.kube.client import KubeClient
from deploy_manager.models.errors import KubeUnavailable
from tests.test_observe import helm_secret

pytestmark = pytest.mark.helm


def _create(kube: KubeClient, secret: dict[str, Any]) -> None:
    ns = secret["metadata"]["namespace"]
    with contextlib.suppress(ApiException):  # the namespace may exist already
        kube.core.create_namespace({"metadata": {"name": ns}})
    kube.core.create_namespaced_secret(ns, {**secret, "type": "helm.sh/release.v1"})


def test_lists_release_secrets_with_one_request(sandbox: Any) -> None:
    kube = KubeClient(kubeconfig=Path(sandbox.kubeconfig))
    for ns in ("kc-a", "kc-b", "kc-other"):
        _create(kube, helm_secret("r1", 1, "deployed", ns=ns))
    kube.core.create_namespaced_secret("kc-a", {"metadata": {"name": "not-helm"}, "stringData": {"x": "y"}})
    for namespaces, expected in ((["kc-a"], {"kc-a"}), (["kc-a", "kc-b"], {"kc-a", "kc-b"})):
        sandbox.reset_stats()
        found = kube.list_release_secrets(namespaces)
        assert {s["metadata"]["namespace"] for s in found} == expected
        assert {s["metadata"]["labels"]["owner"] for s in found} == {"helm"}
        stats = sandbox.stats()
        assert stats["requests"] == 1 and stats["by_verb"] == {"list": 1}
    kube.ping()


def test_unreachable_and_bad_kubeconfig(tmp_path: Path) -> None:
    kc = tmp_path / "kc"
    kc.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
    )
    with pytest.raises(KubeUnavailable, match=r"^listing Helm release Secrets: cannot reach .*127\.0\.0\.1:1"):
        KubeClient(kubeconfig=kc).list_release_secrets(["x"])
    with pytest.raises(KubeUnavailable, match="cannot load kubeconfig"):
        KubeClient(kubeconfig=tmp_path / "missing")
    with pytest.raises(KubeUnavailable, match="cannot load kubeconfig"):
        KubeClient(kubeconfig=kc, context="nope")


def test_namespaced_rbac_lists_each_namespace_never_cluster_wide(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """DM_NAMESPACES (the chart's namespaced RBAC mode): Roles in those namespaces only, so no cluster-wide list."""
    kube = KubeClient(kubeconfig=Path(sandbox.kubeconfig), namespaces=["kn-a", "kn-b"])
    for ns in ("kn-a", "kn-b", "kn-other"):
        _create(kube, helm_secret("r1", 1, "deployed", ns=ns))

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("cluster-wide list of Secrets in namespaced mode")

    monkeypatch.setattr(kube.core, "list_secret_for_all_namespaces", forbidden)
    sandbox.reset_stats()
    assert {s["metadata"]["namespace"] for s in kube.list_release_secrets(None)} == {"kn-a", "kn-b"}
    assert sandbox.stats()["by_verb"] == {"list": 2}
    assert {s["metadata"]["namespace"] for s in kube.list_release_secrets(["kn-b"])} == {"kn-b"}
