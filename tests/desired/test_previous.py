"""Reading an older commit's `needs` for the prune order (a real git repo)."""

from __future__ import annotations

from pathlib import Path

from deploy_manager.desired.previous import needs_at, previous_needs
from deploy_manager.source.git import GitSource
from tests.corelib import commit, init_repo, write, write_cluster


def test_needs_come_from_the_commit_each_release_was_deployed_at(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "repo")
    write_cluster(root, "dev", {"components": {"db": {"chart": "c"}, "api": {"chart": "c", "needs": ["db"]}}})
    old = commit(root, "db <- api")
    write_cluster(root, "dev", {"components": {"other": {"chart": "c"}}})
    new = commit(root, "both removed")
    source = GitSource(str(root), mirror_dir=tmp_path / "mirrors")
    source.fetch()
    assert needs_at(source, old, "dev") == {"db": (), "api": ("db",)}
    assert previous_needs(source, "dev", [("api", old), ("db", old), ("x", None), ("db", new)]) == {
        "api": ("db",),
        "db": None,  # the last entry wins: db is not in the newer commit's file
        "x": None,
    }
    assert needs_at(source, "0" * 40, "dev") is None  # a commit the repository does not have
    write(root / "values/dev/cluster.yaml", "components: [not, a, mapping]\n")
    broken = commit(root, "broken")
    source.fetch()
    assert needs_at(source, broken, "dev") is None  # a file that does not have the shape: order unknown
