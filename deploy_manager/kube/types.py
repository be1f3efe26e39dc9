"""The parts of Kubernetes payloads the product reads (JSON as the API returns it; every key optional).

Only what deploy-manager looks at is spelled out; the API's other fields pass through untouched. (The cluster
Lease is read through the client's typed `V1Lease` model in `kube/lease.py`, so it needs no TypedDict.)
"""

from __future__ import annotations

from typing import Any, TypedDict


class ObjectMeta(TypedDict, total=False):
    name: str
    namespace: str
    uid: str
    labels: dict[str, str]
    annotations: dict[str, str]
    resourceVersion: str
    creationTimestamp: str


class Condition(TypedDict, total=False):
    type: str
    status: str
    reason: str
    message: str


class JobStatus(TypedDict, total=False):
    conditions: list[Condition]
    active: int
    succeeded: int
    failed: int


class Job(TypedDict, total=False):
    """batch/v1 Job: its labels (cluster, component, step, digest) and conditions (Complete / Failed)."""

    metadata: ObjectMeta
    spec: dict[str, Any]
    status: JobStatus


class Secret(TypedDict, total=False):
    """v1 Secret, e.g. a Helm release record: labels name/version/status/owner, `data.release`."""

    metadata: ObjectMeta
    type: str
    data: dict[str, str]
