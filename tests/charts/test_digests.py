"""The example repo through the real loader: a change re-runs exactly the bootstrap steps it must.

These are the issue's acceptance cases at the level of digests (what the planner compares): a
keystone config change leaves keystone's db-sync alone, a nova image bump re-runs nova's
migrations, and a shared layer reaches every cluster that uses it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from deploy_manager.desired import load_cluster
from deploy_manager.source.git import GitSource

from .layers import CLUSTERS, build_values_repo, commit_all


def _edit(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(path.read_text()) or {}
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _digests(source: GitSource, commit: str, cluster: str) -> dict[str, tuple[str, dict[str, str]]]:
    desired = load_cluster(source, commit, cluster)
    return {n: (c.digest, {s.name: s.digest for s in c.bootstrap}) for n, c in desired.components.items()}


def test_keystone_config_change_rolls_keystone_only_and_reruns_no_migration(tmp_path: Path) -> None:
    root = build_values_repo(tmp_path)
    source = GitSource(str(root))
    before = _digests(source, source.resolve("main"), "demo")
    _edit(root / "values/demo/keystone.yaml", lambda v: v["conf"]["keystone"]["token"].update(expiration=7200))
    after = _digests(source, commit_all(root, "keystone token lifetime"), "demo")

    assert [n for n in before if before[n][0] != after[n][0]] == ["keystone"]
    steps_before, steps_after = before["keystone"][1], after["keystone"][1]
    assert steps_before == steps_after, "no keystone step reads the token lifetime"


def test_nova_image_bump_reruns_its_migrations(tmp_path: Path) -> None:
    root = build_values_repo(tmp_path)
    source = GitSource(str(root))
    before = _digests(source, source.resolve("main"), "demo")
    new = "quay.io/airshipit/nova:2024.2-ubuntu_jammy"
    _edit(root / "values/demo/nova.yaml",
          lambda v: v.setdefault("images", {}).setdefault("tags", {}).update(nova_db_sync=new, nova_api=new))
    after = _digests(source, commit_all(root, "nova 2024.2"), "demo")

    assert [n for n in before if before[n][0] != after[n][0]] == ["nova"]
    changed = {s for s in before["nova"][1] if before["nova"][1][s] != after["nova"][1][s]}
    assert changed == {"api-db-sync", "db-sync", "online-data-migrations"}


def test_shared_layer_change_reaches_every_cluster(tmp_path: Path) -> None:
    root = build_values_repo(tmp_path)
    source = GitSource(str(root))
    base = source.resolve("main")
    before = {c: _digests(source, base, c) for c in CLUSTERS}
    _edit(root / "values/_common/glance.yaml", lambda v: v["images"]["tags"].update(glance_api="quay.io/x/glance:y"))
    head = commit_all(root, "glance image everywhere")
    for cluster in CLUSTERS:
        after = _digests(source, head, cluster)
        assert [n for n in before[cluster] if before[cluster][n][0] != after[n][0]] == ["glance"], cluster
        # glance-api's image is not a step image: no glance step re-runs.
        assert before[cluster]["glance"][1] == after["glance"][1]
