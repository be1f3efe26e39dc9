"""Observe what is deployed: Helm's own release records (one list call) and our bootstrap Jobs (one per namespace).

Helm (Secret driver) keeps one Secret per release revision, labelled owner=helm, name, version, status,
plus the release labels we set (`deploy-manager.io/*`). Only the newest revision of each release is
decoded (data.release = base64(gzip(JSON)), under the API's own base64). The result survives loss of our
database and agrees with `helm ls`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import json
from collections.abc import Collection
from typing import Any

from deploy_manager.kube.client import KubeClient
from deploy_manager.kube.jobs import JobsApi
from deploy_manager.kube.types import Job, Secret
from deploy_manager.models.errors import KubeRejected
from deploy_manager.models.labels import LABEL_PREFIX
from deploy_manager.models.observed import ObservedRelease, ReleaseId

_GZIP_MAGIC = b"\x1f\x8b"


def decode_release(data: str) -> dict[str, Any]:
    """Decode a release Secret's `data.release` (as returned by the API, i.e. base64 once more)."""
    raw = base64.b64decode(data)
    if not raw.startswith(_GZIP_MAGIC) and not raw.lstrip().startswith(b"{"):
        with contextlib.suppress(binascii.Error):
            raw = base64.b64decode(raw, validate=True)
    if raw.startswith(_GZIP_MAGIC):
        raw = gzip.decompress(raw)
    decoded = json.loads(raw)
    if not isinstance(decoded, dict):
        raise ValueError("release record is not a JSON object")
    return decoded


def newest_revisions(secrets: list[Secret]) -> dict[ReleaseId, Secret]:
    newest: dict[ReleaseId, tuple[int, Secret]] = {}
    for secret in secrets:
        meta = secret.get("metadata") or {}
        labels = meta.get("labels") or {}
        name, version = labels.get("name"), labels.get("version")
        if not name or not str(version).isdigit():
            continue
        rid = ReleaseId(str(meta.get("namespace", "")), str(name))
        rev = int(str(version))
        if rid not in newest or rev > newest[rid][0]:
            newest[rid] = (rev, secret)
    return {rid: s for rid, (_, s) in newest.items()}


# Revisions that were live once: a rollback or an unlock can return to them.
_WAS_DEPLOYED = ("deployed", "superseded")


def last_deployed_revisions(secrets: list[Secret]) -> dict[ReleaseId, int]:
    """The newest revision of each release whose status label says it was deployed (read from the labels)."""
    out: dict[ReleaseId, int] = {}
    for secret in secrets:
        meta = secret.get("metadata") or {}
        labels = meta.get("labels") or {}
        name, version = labels.get("name"), str(labels.get("version"))
        if not name or not version.isdigit() or labels.get("status") not in _WAS_DEPLOYED:
            continue
        rid = ReleaseId(str(meta.get("namespace", "")), str(name))
        out[rid] = max(out.get(rid, 0), int(version))
    return out


def _our_labels(secret: Secret) -> dict[str, str]:
    labels: dict[str, str] = (secret.get("metadata") or {}).get("labels") or {}
    return {k[len(LABEL_PREFIX) :]: v for k, v in labels.items() if k.startswith(LABEL_PREFIX)}


def _revision_labels(secrets: list[Secret]) -> dict[tuple[ReleaseId, int], dict[str, str]]:
    out: dict[tuple[ReleaseId, int], dict[str, str]] = {}
    for secret in secrets:
        meta = secret.get("metadata") or {}
        labels = meta.get("labels") or {}
        name, version = labels.get("name"), str(labels.get("version"))
        if name and version.isdigit():
            out[(ReleaseId(str(meta.get("namespace", "")), str(name)), int(version))] = _our_labels(secret)
    return out


def to_observed(
    secret: Secret, last_deployed: int | None = None, previous_labels: dict[str, str] | None = None
) -> ObservedRelease:
    meta = secret.get("metadata") or {}
    labels: dict[str, str] = meta.get("labels") or {}
    ours = _our_labels(secret)
    release: dict[str, Any] = {}
    encoded = (secret.get("data") or {}).get("release")
    if encoded:
        release = decode_release(encoded)
    info = release.get("info") or {}
    chart_meta = (release.get("chart") or {}).get("metadata") or {}
    return ObservedRelease(
        namespace=str(meta.get("namespace", "")),
        name=str(labels.get("name", release.get("name", ""))),
        revision=int(labels.get("version", release.get("version", 0))),
        status=str(info.get("status") or labels.get("status", "unknown")),
        chart_name=str(chart_meta.get("name", "")),
        chart_version=str(chart_meta.get("version", "")),
        description=str(info.get("description", "")),
        config=release.get("config") or {},
        labels=ours,
        updated=str(info.get("last_deployed") or labels.get("modifiedAt", "")),
        last_deployed=last_deployed,
        inherited_labels=bool(ours) and previous_labels == ours,
        manifest=str(release.get("manifest") or ""),
    )


def observe(kube: KubeClient, namespaces: list[str] | None) -> dict[ReleaseId, ObservedRelease]:
    """The newest revision of every Helm release in `namespaces` (None: every namespace)."""
    return _observed_all(kube.list_release_secrets(namespaces))


def observe_jobs(kube: KubeClient, cluster: str, namespaces: list[str]) -> list[Job]:
    """Every bootstrap Job of `cluster` in `namespaces`: one list call per namespace (label selector)."""
    api = JobsApi(kube)
    selector = f"{LABEL_PREFIX}cluster={cluster}"
    return [job for ns in sorted(set(namespaces)) for job in api.list_jobs(ns, selector)]


def cluster_releases(kube: KubeClient, cluster: str) -> list[ObservedRelease]:
    """Releases deploy-manager recorded for `cluster` (label `deploy-manager.io/cluster`), any namespace."""
    found = observe(kube, None).values()
    return sorted((r for r in found if r.labels.get("cluster") == cluster), key=lambda r: (r.namespace, r.name))


def _observed_all(secrets: list[Secret]) -> dict[ReleaseId, ObservedRelease]:
    deployed = last_deployed_revisions(secrets)
    by_revision = _revision_labels(secrets)
    out: dict[ReleaseId, ObservedRelease] = {}
    for rid, secret in newest_revisions(secrets).items():
        version = str(((secret.get("metadata") or {}).get("labels") or {}).get("version"))
        previous = by_revision.get((rid, int(version) - 1)) if version.isdigit() else None
        out[rid] = to_observed(secret, deployed.get(rid), previous)
    return out


def is_orphan(release: ObservedRelease, cluster: str, components: Collection[str]) -> bool:
    """Ours for `cluster` (its cluster and component labels and our digest), its component no longer desired,
    and still installed. A release without our labels is never an orphan: we never installed it."""
    labels = release.labels
    return (
        labels.get("cluster") == cluster
        and "digest" in labels
        and bool(labels.get("component"))
        and labels["component"] not in components
        and release.status not in ("uninstalled", "uninstalling")
    )


def observe_with_orphans(
    kube: KubeClient, cluster: str, namespaces: list[str], components: Collection[str]
) -> tuple[dict[ReleaseId, ObservedRelease], list[ObservedRelease]]:
    """`observe(kube, namespaces)` and the cluster's orphaned releases (issue 13), from ONE list of the release
    records: every namespace (or, under namespaced RBAC, every namespace we have rights in), since a removed
    component may have lived in a namespace the cluster no longer uses. If the API refuses a cluster-wide list
    (RBAC without DM_NAMESPACES), only `namespaces` are listed and searched."""
    try:
        secrets = kube.list_release_secrets(None)
    except KubeRejected:
        secrets = kube.list_release_secrets(namespaces)
    found = _observed_all(secrets)
    wanted = set(namespaces)
    observed = {rid: r for rid, r in found.items() if rid.namespace in wanted}
    orphans = [r for rid, r in sorted(found.items()) if is_orphan(r, cluster, components)]
    return observed, orphans
