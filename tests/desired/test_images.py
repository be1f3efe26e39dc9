"""Image references: pinned by digest or floating; `require_image_digests` refuses a floating tag at load time."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy_manager.desired.images import image_problems, is_pinned, pull_policy
from deploy_manager.desired.loader import load_cluster
from deploy_manager.models.errors import ConfigError
from deploy_manager.source.git import GitSource
from tests.charts import layers
from tests.corelib import commit, init_repo, simple_cluster, write_values

DIGEST = "sha256:" + "0123456789abcdef" * 4
PINNED = f"quay.io/airshipit/keystone:2026.2-ubuntu_noble@{DIGEST}"
FLOATING = "quay.io/airshipit/keystone:2026.2-ubuntu_noble"


@pytest.mark.parametrize(
    ("ref", "pinned", "policy"),
    [
        (PINNED, True, "IfNotPresent"),
        (f"quay.io/airshipit/keystone@{DIGEST}", True, "IfNotPresent"),  # a digest without a tag
        (f"registry.local:5000/keystone:x@{DIGEST}", True, "IfNotPresent"),  # a registry port is no tag
        (FLOATING, False, "Always"),
        ("registry.local:5000/keystone", False, "Always"),
        (f"keystone:x@{DIGEST[:-1]}", False, "Always"),  # 63 hex digits
        (f"keystone:x@{DIGEST.upper()}", False, "Always"),
        ("keystone:x@sha512:" + "ab" * 64, False, "Always"),
    ],
)
def test_a_reference_is_pinned_only_by_a_well_formed_sha256_digest(ref: str, pinned: bool, policy: str) -> None:
    assert is_pinned(ref) is pinned
    assert pull_policy(ref) == policy
    assert pull_policy(ref, "Never") == "Never"  # an explicit images.pullPolicy wins


def _problems(tags: dict[str, str], require: bool) -> list[tuple[str | None, str, str]]:
    common = ("values/_common/keystone.yaml", {"images": {"tags": dict(tags)}})
    own = ("values/c1/keystone.yaml", {"images": {"tags": {k: v for k, v in tags.items() if k == "keystone_api"}}})
    values: dict[str, Any] = {"images": {"tags": tags}}
    found = image_problems(cluster="c1", component="keystone", values=values, layers=[common, own],
                           require_digests=require)  # fmt: skip
    return [(p.file, p.key, p.message) for p in found]


def test_floating_tags_are_problems_only_where_digests_are_required() -> None:
    tags = {"keystone_api": FLOATING, "keystone_db_sync": PINNED}
    assert _problems(tags, require=False) == []
    [(file, key, message)] = _problems(tags, require=True)
    # The file named is the last layer that sets the key (the cluster's own file overrides _common).
    assert (file, key) == ("values/c1/keystone.yaml", "images.tags.keystone_api")
    assert FLOATING in message and "require_image_digests" in message and "component keystone" in message
    assert "\n" not in message


def test_a_malformed_digest_is_a_problem_in_every_cluster() -> None:
    [(file, key, message)] = _problems({"keystone_db_sync": FLOATING + "@sha256:abc"}, require=False)
    assert (file, key) == ("values/_common/keystone.yaml", "images.tags.keystone_db_sync")
    assert "malformed digest" in message


# -- the loader, on a real git repo -------------------------------------------------------------------------
@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = init_repo(tmp_path / "repo")
    simple_cluster(root)
    write_values(
        root, "_common", "keystone", {"images": {"tags": {"keystone_api": PINNED, "keystone_db_sync": PINNED}}}
    )
    commit(root, "init")
    return root


def _require(root: Path, on: bool = True) -> None:
    path = root / "values" / "dev" / "cluster.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["require_image_digests"] = on
    path.write_text(yaml.safe_dump(spec, sort_keys=False))


def _load(root: Path) -> Any:
    commit(root, "edit")
    src = GitSource(str(root))
    return load_cluster(src, src.resolve("HEAD"), "dev")


def test_a_cluster_requiring_digests_loads_when_every_image_is_pinned(repo: Path) -> None:
    _require(repo)
    assert _load(repo).components["keystone"].values["images"]["tags"]["keystone_api"] == PINNED


def test_a_floating_tag_in_a_cluster_requiring_digests_is_refused_in_one_line(repo: Path) -> None:
    _require(repo)
    write_values(repo, "dev", "keystone", {"images": {"tags": {"keystone_api": FLOATING}}})
    with pytest.raises(ConfigError) as err:
        _load(repo)
    text = str(err.value)
    assert text.startswith("values/dev/keystone.yaml: images.tags.keystone_api: ")
    assert FLOATING in text and "component keystone" in text and "\n" not in text
    assert (err.value.file, err.value.key) == ("values/dev/keystone.yaml", "images.tags.keystone_api")


def test_floating_tags_load_where_digests_are_not_required(repo: Path) -> None:
    write_values(repo, "dev", "keystone", {"images": {"tags": {"keystone_api": FLOATING}}})
    assert _load(repo).components["keystone"].values["images"]["tags"]["keystone_api"] == FLOATING
    _require(repo, on=False)
    assert _load(repo).components["keystone"].values["images"]["tags"]["keystone_api"] == FLOATING


def test_a_malformed_digest_is_refused_without_the_requirement(repo: Path) -> None:
    write_values(repo, "dev", "keystone", {"images": {"tags": {"keystone_api": FLOATING + "@sha256:123"}}})
    with pytest.raises(ConfigError, match=r"^values/dev/keystone.yaml: images.tags.keystone_api: .*malformed digest"):
        _load(repo)


# -- the charts --------------------------------------------------------------------------------------------
def _containers(component: str, images: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    comp = next(c for c in layers.components("demo") if c.name == component)
    values = copy.deepcopy(comp.values)
    for key, value in (images or {}).items():
        if key == "tags":
            values["images"]["tags"].update(value)
        else:
            values["images"][key] = value
    out = []
    for obj in layers.objects(layers.template(comp, values)):
        if obj.get("kind") in ("Deployment", "StatefulSet"):
            out += obj["spec"]["template"]["spec"]["containers"]
    return out


def test_charts_pull_a_pinned_image_if_not_present_and_a_tag_always() -> None:
    floating = _containers("keystone")
    assert floating and {c["imagePullPolicy"] for c in floating} == {"Always"}
    pinned = _containers("keystone", {"tags": {"keystone_api": PINNED}})
    assert [(c["image"], c["imagePullPolicy"]) for c in pinned] == [(PINNED, "IfNotPresent")]
    forced = _containers("keystone", {"tags": {"keystone_api": PINNED}, "pullPolicy": "Always"})
    assert {c["imagePullPolicy"] for c in forced} == {"Always"}
