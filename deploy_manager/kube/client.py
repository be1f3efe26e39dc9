"""`KubeClient`: a thin, typed wrapper over the kubernetes client for what deploy-manager reads.

Raw JSON (`_preload_content=False`) instead of the generated models: listing a cluster's release
Secrets is the hot path of every plan, and model deserialisation of large Secrets is slow for nothing.
Every failure to reach or use the API becomes `KubeUnavailable` with the server address in it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from deploy_manager.kube.types import Secret
from deploy_manager.models.errors import KubeUnavailable, kube_error_for

HELM_SECRET_SELECTOR = "owner=helm"
_TIMEOUT = (5, 60)  # connect, read (seconds)


class KubeClient:
    """`namespaces`: when the manager's RBAC is namespaced (Roles in those namespaces only), release Secrets are
    listed namespace by namespace, never cluster-wide (which such RBAC forbids); None: one cluster-wide list."""

    def __init__(
        self, *, kubeconfig: Path | None = None, context: str | None = None, namespaces: Sequence[str] | None = None
    ) -> None:
        self.namespaces = tuple(dict.fromkeys(namespaces)) if namespaces else None
        try:
            if kubeconfig is None and context is None and _in_cluster():
                k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
                self.api_client = k8s.ApiClient()
            else:
                path = str(kubeconfig) if kubeconfig is not None else None
                self.api_client = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
                    config_file=path, context=context
                )
        except (ConfigException, OSError, TypeError) as exc:
            where = kubeconfig or "~/.kube/config"
            raise KubeUnavailable(f"cannot load kubeconfig {where}: {exc}") from exc
        # Fail fast on an unreachable API instead of urllib3's default retries.
        self.api_client.configuration.retries = 1
        self.core = k8s.CoreV1Api(self.api_client)
        self.kubeconfig = kubeconfig
        self.context = context

    @property
    def host(self) -> str:
        return str(self.api_client.configuration.host)

    def close(self) -> None:
        self.api_client.close()  # type: ignore[no-untyped-call]

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            resp = fn(*args, _preload_content=False, _request_timeout=_TIMEOUT, **kwargs)
            return json.loads(resp.data)
        except ApiException as exc:
            kind = kube_error_for(exc.status)  # a 403 or 422 is permanent: retrying cannot fix it
            raise kind(f"{what}: Kubernetes API {self.host} answered {exc.status} {exc.reason}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeUnavailable(f"{what}: cannot reach the Kubernetes API at {self.host}: {_short(exc)}") from exc

    def list_release_secrets(self, namespaces: list[str] | None) -> list[Secret]:
        """Every Helm release Secret (all revisions) in `namespaces` (None: all), with ONE list call.

        One namespace: a namespaced list; several: a cluster-wide list filtered here, which is still one
        request however many releases and revisions there are.
        """
        what = "listing Helm release Secrets"
        if self.namespaces is not None:
            # Namespaced RBAC: one list per namespace (the ones asked for, else every one we have rights in).
            found: list[Secret] = []
            for namespace in dict.fromkeys(namespaces if namespaces is not None else self.namespaces):
                data = self._call(
                    f"{what} in {namespace}",
                    self.core.list_namespaced_secret,
                    namespace,
                    label_selector=HELM_SECRET_SELECTOR,
                )
                found += cast(list[Secret], list(data.get("items") or []))
            return found
        if namespaces is not None and len(namespaces) == 1:
            data = self._call(
                what, self.core.list_namespaced_secret, namespaces[0], label_selector=HELM_SECRET_SELECTOR
            )
            return cast(list[Secret], list(data.get("items") or []))
        data = self._call(what, self.core.list_secret_for_all_namespaces, label_selector=HELM_SECRET_SELECTOR)
        items = cast(list[Secret], list(data.get("items") or []))
        if namespaces is None:
            return items
        wanted = set(namespaces)
        return [s for s in items if s.get("metadata", {}).get("namespace") in wanted]

    def ping(self) -> None:
        """Raise KubeUnavailable unless the API server answers."""
        self._call("checking the Kubernetes API", self.core.get_api_resources)


def _in_cluster() -> bool:
    return Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists()


def _short(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc).splitlines()[0][:200]
