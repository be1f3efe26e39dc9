"""Charts in the repo: content digest from git tree ids, and export for helm to read.

A chart's digest is its directory's git tree id, combined with the tree ids of the charts it pulls in
from the repo: `file://` dependencies in Chart.yaml and symlinked subchart directories (the OpenStack
charts share the library chart `charts/openstack/common`). No file is read or rendered to know that a
chart is unchanged.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from deploy_manager.desired.values import sha256_hex
from deploy_manager.desired.yamlio import load_yaml
from deploy_manager.models.errors import ChartError, ConfigError
from deploy_manager.source.git import GitSource, is_full_sha, resolve_link


@dataclass(frozen=True)
class ChartInfo:
    path: str
    name: str
    version: str
    tree_id: str
    digest: str
    # (dependency name as it must appear under charts/, repo path) for file:// dependencies.
    file_deps: tuple[tuple[str, str], ...]


def _norm(path: str) -> str | None:
    """`charts/./a/../b/` -> `charts/b` (the directory holding a file in `path`)."""
    return resolve_link(path.rstrip("/") + "/Chart.yaml", ".") if path else None


def chart_info(source: GitSource, commit: str, path: str) -> ChartInfo:
    """Name, version and digest of the chart at `path` (memoised per commit: commits are immutable)."""
    path = _norm(path) or path
    if not is_full_sha(commit):  # a branch name must not become a cache key
        commit = source.resolve(commit)
    return source.memo(("chart_info", commit, path), lambda: _chart_info(source, commit, path, frozenset()))


def _chart_info(source: GitSource, commit: str, path: str, _seen: frozenset[str]) -> ChartInfo:
    path = _norm(path) or path
    if path in _seen:
        raise ChartError(f"{path}: chart dependencies form a cycle")
    tree_id = source.tree_id(commit, path)
    if tree_id is None:  # the chart directory may be (behind) a link inside the repo; one leaving it raises
        real, obj = source.follow(commit, path)
        if obj is not None and obj.type == "tree":
            path, tree_id = real, obj.hexsha
    if tree_id is None:
        raise ChartError(f"{path}: no chart directory at commit {commit[:12]}")
    chart_yaml = f"{path}/Chart.yaml"
    blob = source.file_id(commit, chart_yaml)
    if blob is None:
        raise ChartError(f"{chart_yaml}: missing (not a Helm chart) at commit {commit[:12]}")
    meta = source.memo(("chart_yaml", blob), lambda: load_yaml(source.read_file(commit, chart_yaml) or b"", chart_yaml))
    if not isinstance(meta, dict) or not meta.get("name") or not meta.get("version"):
        raise ConfigError("Chart.yaml needs `name` and `version`", file=chart_yaml)

    parts: list[str] = [f"{path}:{tree_id}"]
    file_deps: list[tuple[str, str]] = []
    for i, dep in enumerate(meta.get("dependencies") or []):
        if not isinstance(dep, dict) or not isinstance(dep.get("name"), str):
            raise ConfigError("dependency needs a `name`", file=chart_yaml, key=f"dependencies.{i}")
        repo = str(dep.get("repository") or "")
        if repo.startswith("file://"):
            dep_path = resolve_link(f"{path}/Chart.yaml", repo[len("file://") :])
            if dep_path is None:
                raise ConfigError(f"dependency path {repo} leaves the repository", file=chart_yaml)
            dep_info = _chart_info(source, commit, dep_path, _seen | {path})
            parts.append(f"dep:{dep['name']}:{dep_info.digest}")
            file_deps.append((str(dep["name"]), dep_path))
        else:
            parts.append(f"remote:{dep['name']}:{repo}:{dep.get('version', '')}")
    # Symlinks anywhere in the chart that point at directories in the repo (e.g. charts/common -> ../../common).
    # The scan of a tree is memoised by its id: an unchanged chart is not walked again at a new commit.
    links = source.memo(
        ("symlinks", tree_id, path),
        lambda: [e for e in source.list_tree(commit, path, recursive=True) if e.kind == "symlink"],
    )
    for entry in links:
        # Every link must stay inside the repository at this commit (SymlinkError names the one that does not):
        # helm reads the exported chart from disk, so a link out of the repo would read the manager's own files.
        resolved, obj = source.follow(commit, entry.path)
        if obj is None:
            continue  # a submodule behind a link: not exported
        if resolved == path or resolved.startswith(path + "/"):
            continue  # inside the chart: already covered by the chart's own tree id
        if obj.type == "blob":
            parts.append(f"link:{entry.path}:{obj.hexsha}")  # a file from elsewhere in the repo
        elif obj.type == "tree":
            sub = [entry.path, obj.hexsha]
            for inner in source.list_tree(commit, resolved, recursive=True):
                if inner.kind == "symlink":
                    source.follow(commit, inner.path)  # validated; exported as what it points to
                    sub.append(f"{inner.path}:{inner.sha}")
            parts.append("link:" + ":".join(sub))
    digest = tree_id if len(parts) == 1 else sha256_hex(*sorted(parts))[:40]
    return ChartInfo(
        path=path,
        name=str(meta["name"]),
        version=str(meta["version"]),
        tree_id=tree_id,
        digest=digest,
        file_deps=tuple(file_deps),
    )


def export_chart(source: GitSource, commit: str, info: ChartInfo, cache_dir: Path) -> Path:
    """A directory helm can install from: `<cache_dir>/<digest>/<chart>`, reused if present.

    `file://` dependencies are exported into the chart's `charts/<name>/` (what `helm dependency build`
    would vendor), so helm needs no repository access and no `helm dependency` call.
    """
    final = cache_dir / info.digest
    chart_dir = final / PurePosixPath(info.path).name
    if chart_dir.exists():
        return chart_dir
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{info.digest}-", dir=cache_dir))
    try:
        _export_into(source, commit, info, tmp / PurePosixPath(info.path).name)
        try:
            os.rename(tmp, final)
        except OSError:
            if not chart_dir.exists():  # lost a race with another exporter: theirs is identical
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return chart_dir


def _export_into(source: GitSource, commit: str, info: ChartInfo, dest: Path) -> None:
    source.export_tree(commit, info.path, dest)
    for name, dep_path in info.file_deps:
        target = dest / "charts" / name
        if target.exists():
            continue  # vendored or symlinked into charts/ already
        dep = chart_info(source, commit, dep_path)
        _export_into(source, commit, dep, target)
