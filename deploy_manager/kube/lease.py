"""`LeaseBackend` on the Kubernetes API (CoordinationV1Api): the cluster lease's only Kubernetes code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from deploy_manager.models.errors import LeaseConflict, LeaseRejected, LeaseUnavailable
from deploy_manager.models.lease import LeaseRecord


class KubernetesLeaseBackend:
    """`LeaseBackend` on the Kubernetes API (kubernetes client, CoordinationV1Api)."""

    def __init__(self, *, name: str, namespace: str, kubeconfig: Path | None, context: str | None = None) -> None:
        self.name = name
        self.namespace = namespace
        if kubeconfig is not None:
            api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=str(kubeconfig), context=context
            )
        else:
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            api_client = client.ApiClient(configuration)
        # Fail fast and let ClusterLease retry, instead of urllib3's default retries inside one call.
        api_client.configuration.retries = 1
        self._client = client
        self._api = client.CoordinationV1Api(api_client)
        self._version = client.VersionApi(api_client)
        self._core = client.CoreV1Api(api_client)
        self._timeout = 10

    def _to_record(self, lease: Any) -> LeaseRecord:
        spec = lease.spec
        return LeaseRecord(
            holder=spec.holder_identity or None,
            duration_seconds=spec.lease_duration_seconds or 0,
            acquire_time=spec.acquire_time,
            renew_time=spec.renew_time,
            transitions=spec.lease_transitions or 0,
            resource_version=lease.metadata.resource_version,
        )

    def _body(self, record: LeaseRecord) -> Any:
        c = self._client
        return c.V1Lease(
            api_version="coordination.k8s.io/v1",
            kind="Lease",
            metadata=c.V1ObjectMeta(
                name=self.name,
                namespace=self.namespace,
                resource_version=record.resource_version,
                labels={"app.kubernetes.io/managed-by": "deploy-manager"},
            ),
            spec=c.V1LeaseSpec(
                holder_identity=record.holder,
                lease_duration_seconds=record.duration_seconds,
                acquire_time=record.acquire_time,
                renew_time=record.renew_time,
                lease_transitions=record.transitions,
            ),
        )

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args, _request_timeout=self._timeout)
        except ApiException as exc:
            if exc.status == 404:
                return None
            if exc.status == 409:
                raise LeaseConflict(f"lease {self.namespace}/{self.name} changed concurrently") from exc
            if exc.status in (400, 401, 403, 422):
                raise LeaseRejected(
                    f"lease {self.namespace}/{self.name}: the API server refused it: HTTP {exc.status} {exc.reason}"
                ) from exc
            raise LeaseUnavailable(f"lease {self.namespace}/{self.name}: HTTP {exc.status} {exc.reason}") from exc
        except (HTTPError, OSError) as exc:
            raise LeaseUnavailable(f"lease {self.namespace}/{self.name}: {exc}") from exc

    def get(self) -> LeaseRecord | None:
        lease = self._call(self._api.read_namespaced_lease, self.name, self.namespace)
        return None if lease is None else self._to_record(lease)

    def create(self, record: LeaseRecord) -> LeaseRecord:
        lease = self._call(self._api.create_namespaced_lease, self.namespace, self._body(record))
        if lease is None:
            raise LeaseUnavailable(f"namespace {self.namespace} not found for lease {self.name}")
        return self._to_record(lease)

    def update(self, record: LeaseRecord) -> LeaseRecord:
        lease = self._call(self._api.replace_namespaced_lease, self.name, self.namespace, self._body(record))
        if lease is None:
            raise LeaseConflict(f"lease {self.namespace}/{self.name} was deleted")
        return self._to_record(lease)

    def pod_exists(self, name: str, namespace: str | None = None) -> bool | None:
        """Whether pod `name` exists (in the Lease's namespace by default); None when the API cannot say."""
        try:
            self._core.read_namespaced_pod(name, namespace or self.namespace, _request_timeout=self._timeout)
        except ApiException as exc:
            return False if exc.status == 404 else None
        except (HTTPError, OSError):
            return None
        return True

    def ping(self) -> None:
        """Raise LeaseUnavailable unless the API server answers (used by /readyz)."""
        self._call(self._version.get_code)
