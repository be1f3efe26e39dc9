"""`JobsApi`: the Kubernetes calls the bootstrap engine makes (Jobs, their ConfigMaps/Secrets, pod logs).

Raw JSON in and out (`_preload_content=False`), like `KubeClient`. Errors are typed by what the caller
does next (classes from `models.errors`): `KubeNotFound` (404: absent, a normal answer for get/delete),
`KubeConflict` (409: exists already), `KubeRejected` (another 4xx: permanent), `KubeUnavailable` (unreachable,
5xx, 429: temporary), with the API server address in the message.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, cast

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from deploy_manager.kube.client import KubeClient, api_error
from deploy_manager.kube.types import Job
from deploy_manager.models.errors import KubeConflict, KubeNotFound, KubeUnavailable
from deploy_manager.retry import call_with_retries

__all__ = ["JobsApi", "KubeConflict", "KubeNotFound"]

Obj = dict[str, Any]
_TIMEOUT = (5, 60)  # connect, read (seconds)


class JobsApi:
    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube
        self.core = k8s.CoreV1Api(kube.api_client)
        self.batch = k8s.BatchV1Api(kube.api_client)
        self.rbac = k8s.RbacAuthorizationV1Api(kube.api_client)

    def _raw(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """One API call, retried on temporary errors (the client's RetryPolicy: backoff, jitter, Retry-After)."""

        def once() -> Any:
            try:
                return fn(*args, _preload_content=False, _request_timeout=_TIMEOUT, **kwargs)
            except ApiException as exc:
                raise api_error(what, self.kube.host, exc) from exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                reason = str(getattr(exc, "reason", None) or exc).splitlines()[0][:200]
                raise KubeUnavailable(f"{what}: cannot reach the Kubernetes API at {self.kube.host}: {reason}") from exc

        return call_with_retries(once, self.kube.retry)[0]

    def _json(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Obj:
        data = json.loads(self._raw(what, fn, *args, **kwargs).data or b"{}")
        return data if isinstance(data, dict) else {}

    def _read(self, what: str, fn: Any, *args: Any) -> Obj | None:
        """`_json` of a read; None if the object does not exist."""
        try:
            return self._json(what, fn, *args)
        except KubeNotFound:
            return None

    def _delete(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> bool:
        """`_raw` of a delete; False if the object was already gone."""
        try:
            self._raw(what, fn, *args, **kwargs)
        except KubeNotFound:
            return False
        return True

    # -- Jobs -----------------------------------------------------------------------------------------
    def list_jobs(self, namespace: str, selector: str) -> list[Job]:
        data = self._json(
            f"listing Jobs in {namespace}", self.batch.list_namespaced_job, namespace, label_selector=selector
        )
        return cast(list[Job], list(data.get("items") or []))

    def get_job(self, namespace: str, name: str) -> Obj | None:
        return self._read(f"reading Job {namespace}/{name}", self.batch.read_namespaced_job, name, namespace)

    def create_job(self, namespace: str, body: Obj) -> Obj:
        name = body["metadata"]["name"]
        return self._json(f"creating Job {namespace}/{name}", self.batch.create_namespaced_job, namespace, body)

    def delete_job(self, namespace: str, name: str) -> bool:
        """Delete a Job and (in the background) its pods; False if it was already gone."""
        return self._delete(
            f"deleting Job {namespace}/{name}",
            self.batch.delete_namespaced_job,
            name,
            namespace,
            body=k8s.V1DeleteOptions(propagation_policy="Background"),
        )

    # -- ConfigMaps and Secrets -----------------------------------------------------------------------
    def create_configmap(self, namespace: str, body: Obj) -> Obj:
        name = body["metadata"]["name"]
        return self._json(
            f"creating ConfigMap {namespace}/{name}", self.core.create_namespaced_config_map, namespace, body
        )

    def replace_configmap(self, namespace: str, body: Obj) -> Obj:
        name = body["metadata"]["name"]
        return self._json(
            f"replacing ConfigMap {namespace}/{name}", self.core.replace_namespaced_config_map, name, namespace, body
        )

    def list_configmaps(self, namespace: str, selector: str) -> list[Obj]:
        data = self._json(
            f"listing ConfigMaps in {namespace}",
            self.core.list_namespaced_config_map,
            namespace,
            label_selector=selector,
        )
        return list(data.get("items") or [])

    def delete_configmap(self, namespace: str, name: str) -> bool:
        """False if it was already gone."""
        return self._delete(
            f"deleting ConfigMap {namespace}/{name}", self.core.delete_namespaced_config_map, name, namespace
        )

    def delete_secret(self, namespace: str, name: str) -> bool:
        """False if it was already gone."""
        return self._delete(f"deleting Secret {namespace}/{name}", self.core.delete_namespaced_secret, name, namespace)

    def get_secret(self, namespace: str, name: str) -> Obj | None:
        return self._read(f"reading Secret {namespace}/{name}", self.core.read_namespaced_secret, name, namespace)

    def create_secret(self, namespace: str, body: Obj) -> Obj:
        name = body["metadata"]["name"]
        return self._json(f"creating Secret {namespace}/{name}", self.core.create_namespaced_secret, namespace, body)

    def replace_secret(self, namespace: str, body: Obj) -> Obj:
        name = body["metadata"]["name"]
        return self._json(
            f"replacing Secret {namespace}/{name}", self.core.replace_namespaced_secret, name, namespace, body
        )

    # -- the bootstrap ServiceAccount and its namespaced RBAC (bootstrap/rbac.py) -----------------------
    def _account_calls(self, kind: str) -> tuple[Any, Any, Any]:
        """(read, create, replace) of a ServiceAccount, Role or RoleBinding."""
        if kind == "ServiceAccount":
            c = self.core
            return c.read_namespaced_service_account, c.create_namespaced_service_account, None
        if kind == "Role":
            r = self.rbac
            return r.read_namespaced_role, r.create_namespaced_role, r.replace_namespaced_role
        if kind == "RoleBinding":
            r = self.rbac
            return r.read_namespaced_role_binding, r.create_namespaced_role_binding, r.replace_namespaced_role_binding
        raise ValueError(f"not a bootstrap account kind: {kind}")

    def get_account_object(self, kind: str, namespace: str, name: str) -> Obj | None:
        read, _, _ = self._account_calls(kind)
        return self._read(f"reading {kind} {namespace}/{name}", read, name, namespace)

    def create_account_object(self, namespace: str, body: Obj) -> Obj:
        kind, name = body["kind"], body["metadata"]["name"]
        _, create, _ = self._account_calls(kind)
        return self._json(f"creating {kind} {namespace}/{name}", create, namespace, body)

    def replace_account_object(self, namespace: str, body: Obj) -> Obj:
        kind, name = body["kind"], body["metadata"]["name"]
        _, _, replace = self._account_calls(kind)
        if replace is None:
            raise ValueError(f"{kind} is never replaced")
        return self._json(f"replacing {kind} {namespace}/{name}", replace, name, namespace, body)

    def ensure_namespace(self, namespace: str) -> None:
        """Create the namespace if missing (a fresh install's `before` steps run before helm creates it)."""
        if self._read(f"reading Namespace {namespace}", self.core.read_namespace, namespace) is not None:
            return
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        with contextlib.suppress(KubeConflict):  # created concurrently (another component of the namespace)
            self._json(f"creating Namespace {namespace}", self.core.create_namespace, body)

    # -- Pods and logs --------------------------------------------------------------------------------
    def list_pods(self, namespace: str, selector: str) -> list[Obj]:
        data = self._json(
            f"listing Pods in {namespace}", self.core.list_namespaced_pod, namespace, label_selector=selector
        )
        return list(data.get("items") or [])

    def pod_log(self, namespace: str, pod: str, *, tail_lines: int) -> str:
        resp = self._raw(
            f"reading the log of Pod {namespace}/{pod}",
            self.core.read_namespaced_pod_log,
            pod,
            namespace,
            tail_lines=tail_lines,
        )
        raw = resp.data or b""
        return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
