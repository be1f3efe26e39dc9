"""What an older commit's cluster.yaml said about the components it declared (issue 13: prune order).

A pruned component is gone from the current cluster.yaml, so its `needs` are read from the commit its
release records (the `deploy-manager.io/commit` label): the release records and git together are the
record, so nothing extra is stored and a lost database loses nothing. Only `components.<name>.needs` is read,
leniently: an old file that no longer validates still gives its needs.
"""

from __future__ import annotations

from collections.abc import Iterable

from deploy_manager.desired.loader import cluster_file
from deploy_manager.desired.yamlio import load_yaml
from deploy_manager.models.errors import DeployManagerError
from deploy_manager.source.git import GitSource


def needs_at(source: GitSource, commit: str, cluster: str) -> dict[str, tuple[str, ...]] | None:
    """component -> needs in cluster.yaml at `commit`; None when the commit or the file cannot be read."""
    try:
        raw = source.read_file(commit, cluster_file(cluster))
        data = load_yaml(raw, cluster_file(cluster)) if raw is not None else None
    except (DeployManagerError, ValueError, LookupError, OSError):
        return None  # a commit gone from the repo (force-push) or a broken old file: the order is unknown
    components = data.get("components") if isinstance(data, dict) else None
    if not isinstance(components, dict):
        return None
    out: dict[str, tuple[str, ...]] = {}
    for name, spec in components.items():
        needs = spec.get("needs") if isinstance(spec, dict) else None
        out[str(name)] = tuple(str(n) for n in needs) if isinstance(needs, list) else ()
    return out


def previous_needs(
    source: GitSource, cluster: str, releases: Iterable[tuple[str, str | None]]
) -> dict[str, tuple[str, ...] | None]:
    """For each (component, commit it was deployed at): its needs there (None: unknown). One read per commit."""
    by_commit: dict[str, dict[str, tuple[str, ...]] | None] = {}
    out: dict[str, tuple[str, ...] | None] = {}
    for component, commit in releases:
        if not commit:
            out[component] = None
            continue
        if commit not in by_commit:
            by_commit[commit] = needs_at(source, commit, cluster)
        declared = by_commit[commit]
        out[component] = None if declared is None else declared.get(component)
    return out
