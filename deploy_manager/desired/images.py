"""Image references in a component's values (`images.tags.<key>`): pinned by digest, or floating.

A reference is *pinned* when it names a manifest digest (`repo[:tag]@sha256:<64 hex>`): every node runs the
same bytes, whatever the registry does to the tag later. A tag alone *floats*: a re-pushed tag (or a node that
pulled it earlier, with `IfNotPresent`) runs something else under the same name. The charts pick the pull
policy from the reference (`common.pullPolicy`): `IfNotPresent` for a digest, `Always` for a tag.

A cluster with `require_image_digests: true` in its cluster.yaml refuses to plan with any floating reference,
naming the values file that sets it, the key and the component. A malformed digest is refused in every cluster
(it could never be pulled). Pure functions: the loader reads the files and raises.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The digest part of a reference: what follows the last "@".
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")

MSG_FLOATING = (
    "{ref} floats (a tag, no @sha256: digest) but cluster {cluster} sets require_image_digests "
    "(component {component}; pin it as <repo>:<tag>@sha256:<digest>, see values/README.md)"
)
MSG_MALFORMED = "{ref} has a malformed digest (expected @sha256: and 64 lowercase hex digits) (component {component})"


@dataclass(frozen=True)
class ImageProblem:
    file: str | None  # the values file that sets the reference (None: the chart's own defaults)
    key: str  # images.tags.<key>
    component: str
    message: str


def is_pinned(ref: str) -> bool:
    """Whether `ref` names a well-formed sha256 manifest digest."""
    _, at, digest = ref.rpartition("@")
    return bool(at) and bool(_DIGEST.match(digest))


def pull_policy(ref: str, configured: str | None = None) -> str:
    """The pull policy a container of `ref` gets: the configured one, else IfNotPresent for a digest (the bytes
    cannot change), Always for a tag (so a re-pushed tag is not served from a node's stale copy).
    Must match the charts' `common.pullPolicy`."""
    if configured:
        return configured
    return "IfNotPresent" if is_pinned(ref) else "Always"


def image_tags(values: Mapping[str, Any]) -> dict[str, str]:
    images = values.get("images")
    tags = images.get("tags") if isinstance(images, Mapping) else None
    if not isinstance(tags, Mapping):
        return {}
    return {str(k): str(v) for k, v in tags.items() if isinstance(v, str) and v}


def _source(key: str, layers: Sequence[tuple[str, Mapping[str, Any]]]) -> str | None:
    """The last values file (merge order) that sets images.tags.<key>."""
    found = None
    for file, values in layers:
        if key in image_tags(values):
            found = file
    return found


def image_problems(
    *,
    cluster: str,
    component: str,
    values: Mapping[str, Any],
    layers: Sequence[tuple[str, Mapping[str, Any]]],
    require_digests: bool,
) -> list[ImageProblem]:
    """Every malformed digest, and (when the cluster requires digests) every floating tag, in key order."""
    problems: list[ImageProblem] = []
    for key, ref in sorted(image_tags(values).items()):
        where = _source(key, layers)
        if "@" in ref and not is_pinned(ref):
            message = MSG_MALFORMED.format(ref=ref, component=component)
        elif require_digests and not is_pinned(ref):
            message = MSG_FLOATING.format(ref=ref, cluster=cluster, component=component)
        else:
            continue
        problems.append(ImageProblem(where, f"images.tags.{key}", component, message))
    return problems
