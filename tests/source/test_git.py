"""GitSource against real repositories: local clone, bare mirror of a file:// URL, symlinks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from git.exc import GitCommandError

from deploy_manager.models.errors import SourceError, SymlinkError, UnknownRevision
from deploy_manager.source.git import GitSource, git_error_text, resolve_link
from tests.corelib import commit, git, init_repo, write


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = init_repo(tmp_path / "repo")
    write(root / "charts" / "a" / "Chart.yaml", "name: a\nversion: 0.1.0\n")
    write(root / "charts" / "a" / "templates" / "x.yaml", "kind: X\n")
    commit(root, "first")
    git(root, "tag", "v1")
    write(root / "charts" / "a" / "Chart.yaml", "name: a\nversion: 0.2.0\n")
    commit(root, "second")
    return root


def test_reads_files_at_each_commit_without_checkout(repo: Path) -> None:
    src = GitSource(str(repo))
    first, head = src.resolve("v1"), src.resolve("main")
    assert first != head and len(head) == 40
    assert src.read_file(first, "charts/a/Chart.yaml") == b"name: a\nversion: 0.1.0\n"
    assert src.read_file(head, "charts/a/Chart.yaml") == b"name: a\nversion: 0.2.0\n"
    assert src.read_file(head, "charts/missing.yaml") is None
    assert src.read_file(head, "charts/a") is None  # a directory is not a file
    # The working tree is irrelevant: reads come from the object database.
    (repo / "charts" / "a" / "Chart.yaml").write_text("garbage")
    assert src.read_file(head, "charts/a/Chart.yaml") == b"name: a\nversion: 0.2.0\n"


def test_tree_ids_are_content_hashes(repo: Path) -> None:
    src = GitSource(str(repo))
    first, head = src.resolve("v1"), src.resolve("main")
    assert src.tree_id(first, "charts/a") != src.tree_id(head, "charts/a")
    assert src.tree_id(first, "charts/a/templates") == src.tree_id(head, "charts/a/templates")
    assert src.tree_id(head, "charts/nope") is None
    assert src.tree_id(head, "charts/a/Chart.yaml") is None


def test_unknown_revision(repo: Path) -> None:
    with pytest.raises(UnknownRevision, match="no-such-branch"):
        GitSource(str(repo)).resolve("no-such-branch")


def test_local_bare_repository(repo: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    git(repo, "clone", "-q", "--bare", str(repo), str(bare))
    src = GitSource(str(bare))
    assert not src.remote and src.resolve("main") == git(repo, "rev-parse", "HEAD")
    assert src.read_file(src.resolve("v1"), "charts/a/Chart.yaml") == b"name: a\nversion: 0.1.0\n"
    src.fetch()  # a local path has no remote to fetch from: a no-op


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not a git repository"):
        GitSource(str(tmp_path))


def test_file_url_is_cloned_into_a_bare_mirror_and_fetched(repo: Path, tmp_path: Path) -> None:
    mirrors = tmp_path / "mirrors"
    src = GitSource(f"file://{repo}", mirror_dir=mirrors)
    assert src.path.parent == mirrors and (src.path / "HEAD").exists() and not (src.path / ".git").exists()
    head = src.resolve("main")
    assert head == git(repo, "rev-parse", "HEAD")
    write(repo / "README.md", "new\n")
    new = commit(repo, "third")
    with pytest.raises(UnknownRevision):
        src.resolve(new)
    src.fetch()
    assert src.resolve("main") == new
    # A second GitSource for the same URL reuses the mirror.
    assert GitSource(f"file://{repo}", mirror_dir=mirrors).path == src.path


def test_bad_url_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="clone failed"):
        GitSource(f"file://{tmp_path}/nope", mirror_dir=tmp_path / "m")


def test_export_tree_materialises_symlinked_dirs(repo: Path, tmp_path: Path) -> None:
    write(repo / "charts" / "common" / "Chart.yaml", "name: common\nversion: 1.0.0\n")
    (repo / "charts" / "a" / "charts").mkdir()
    os.symlink("../../common", repo / "charts" / "a" / "charts" / "common")
    (repo / "charts" / "a" / "run.sh").write_text("#!/bin/sh\n")
    (repo / "charts" / "a" / "run.sh").chmod(0o755)
    head = commit(repo, "symlink")
    src = GitSource(str(repo))
    assert src.kind(head, "charts/a/charts/common") == "symlink"
    out = src.export_tree(head, "charts/a", tmp_path / "out")
    linked = out / "charts" / "common"
    assert linked.is_dir() and not linked.is_symlink()
    assert (linked / "Chart.yaml").read_text() == "name: common\nversion: 1.0.0\n"
    assert os.access(out / "run.sh", os.X_OK)
    # Reused as-is when present.
    (out / "marker").write_text("x")
    assert src.export_tree(head, "charts/a", tmp_path / "out") == out and (out / "marker").exists()


@pytest.mark.parametrize(
    ("link", "target", "expected"),
    [
        ("charts/a/charts/common", "../../common", "charts/common"),
        ("charts/a/x", "./y", "charts/a/y"),
        ("a", "../../etc/passwd", None),
        ("a/b", "/abs", None),
    ],
)
def test_resolve_link(link: str, target: str, expected: str | None) -> None:
    assert resolve_link(link, target) == expected


def test_follow_resolves_links_inside_the_repo_and_refuses_the_rest(repo: Path) -> None:
    os.symlink("a", repo / "charts" / "b")  # a directory link used as a path component
    os.symlink("../a/Chart.yaml", repo / "charts" / "a" / "meta")
    os.symlink("meta", repo / "charts" / "a" / "meta2")  # a chain
    os.symlink("/etc/passwd", repo / "abs")
    os.symlink("../../x", repo / "charts" / "up")
    os.symlink("nowhere", repo / "charts" / "dangling")
    os.symlink("loop2", repo / "loop1")
    os.symlink("loop1", repo / "loop2")
    head = commit(repo, "links")
    src = GitSource(str(repo))
    chart = b"name: a\nversion: 0.2.0\n"
    assert src.follow(head, "charts/b/Chart.yaml")[0] == "charts/a/Chart.yaml"
    assert src.read_file(head, "charts/b/Chart.yaml") == chart
    assert src.read_file(head, "charts/a/meta2") == chart and src.file_id(head, "charts/a/meta2") is not None
    assert src.read_file(head, "charts/nothing") is None  # a plain missing path is just absent
    for path, words in [
        ("abs", "abs: symlink to /etc/passwd points outside the repository"),
        ("charts/up", "charts/up: symlink to ../../x points outside the repository"),
        ("charts/dangling", "charts/dangling: symlink to nowhere points to charts/nowhere, which does not exist"),
        ("loop1", "too many levels of symlinks"),
    ]:
        with pytest.raises(SymlinkError, match=words):
            src.read_file(head, path)


def test_git_error_text_unwraps_git_s_stderr() -> None:
    exc = GitCommandError(
        ["git", "clone"], 128, "Cloning into bare repository 'x'...\nfatal: repo 'y' not found\n\nPlease check\n"
    )
    assert git_error_text(exc) == "fatal: repo 'y' not found"
