"""Loading a cluster at a commit from a real git repo: layout, layering, digests, precise errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from deploy_manager.desired.loader import load_cluster
from deploy_manager.models.desired import DesiredCluster
from deploy_manager.models.errors import ConfigError
from deploy_manager.models.observed import ObservedRelease, ReleaseId
from deploy_manager.models.plan import ActionKind, Plan
from deploy_manager.planner.plan import make_plan
from deploy_manager.source.git import GitSource
from tests.corelib import (
    commit,
    init_repo,
    simple_cluster,
    simple_repo,
    write,
    write_chart,
    write_cluster,
    write_values,
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return simple_repo(tmp_path / "repo")


def load(root: Path, cluster: str = "dev"):
    src = GitSource(str(root))
    return load_cluster(src, src.resolve("HEAD"), cluster)


def test_minimal_form_from_the_issue(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "r")
    write_chart(root, "charts/openstack/rabbitmq")
    write_chart(root, "charts/openstack/keystone")
    write(
        root / "values/c1/cluster.yaml",
        "namespace: openstack\ncomponents:\n  rabbitmq:\n    chart: charts/openstack/rabbitmq\n"
        "  keystone:\n    chart: charts/openstack/keystone\n    needs: [rabbitmq]\n",
    )
    commit(root)
    d = load(root, "c1")
    ks = d.components["keystone"]
    assert (ks.release, ks.namespace, ks.needs, ks.timeout, ks.values) == (
        "keystone",
        "openstack",
        ("rabbitmq",),
        300,
        {},
    )
    assert ks.chart.path == "charts/openstack/keystone" and ks.chart.chart_version == "0.1.0"
    assert len(ks.digest) == 40 and ks.digest != d.components["rabbitmq"].digest


def test_values_layers_merge_maps_deeply_and_replace_lists(repo: Path) -> None:
    write_values(
        repo, "_common", "keystone", {"conf": {"keystone": {"debug": True, "workers": 4}}, "hosts": ["a", "b"]}
    )
    write_values(repo, "dev", "keystone", {"conf": {"keystone": {"debug": False}}, "hosts": ["c"]})
    commit(repo)
    ks = load(repo).components["keystone"]
    assert ks.values == {"conf": {"keystone": {"debug": False, "workers": 4}}, "hosts": ["c"]}
    assert ks.values_files == ("values/_common/keystone.yaml", "values/dev/keystone.yaml")


def test_digest_is_stable_across_unrelated_commits_and_tracks_inputs(repo: Path) -> None:
    before = {n: c.digest for n, c in load(repo).components.items()}
    write(repo / "README.md", "docs\n")
    commit(repo)
    assert {n: c.digest for n, c in load(repo).components.items()} == before

    write_values(repo, "dev", "glance", {"replicas": 2, "conf": {"glance": {"debug": False}}})
    commit(repo)
    after = {n: c.digest for n, c in load(repo).components.items()}
    assert {n for n in after if after[n] != before[n]} == {"glance"}

    write(repo / "charts/openstack/nova/templates/extra.yaml", "# new template\n")
    commit(repo)
    again = {n: c.digest for n, c in load(repo).components.items()}
    assert {n for n in again if again[n] != after[n]} == {"nova"}


def test_common_layer_change_touches_every_cluster_using_it(repo: Path) -> None:
    simple_cluster(repo, "prod")
    commit(repo)
    before = {(c, n): x.digest for c in ("dev", "prod") for n, x in load(repo, c).components.items()}
    write_values(repo, "_common", "keystone", {"conf": {"keystone": {"token": {"expiration": 3600}}}})
    commit(repo)
    after = {(c, n): x.digest for c in ("dev", "prod") for n, x in load(repo, c).components.items()}
    assert {k for k in after if after[k] != before[k]} == {("dev", "keystone"), ("prod", "keystone")}


def test_timestamps_stay_strings(repo: Path) -> None:
    write(repo / "values/dev/keystone.yaml", "since: 2024-01-01\nwhen: 2024-01-01T10:00:00Z\n")
    commit(repo)
    assert load(repo).components["keystone"].values == {"since": "2024-01-01", "when": "2024-01-01T10:00:00Z"}


def test_broken_yaml_names_file_and_line(repo: Path) -> None:
    write(repo / "values/dev/glance.yaml", "replicas: 1\nconf:\n  a: [1, 2\n  b: 3\n")
    commit(repo)
    with pytest.raises(ConfigError, match=r"^values/dev/glance\.yaml:\d+: invalid YAML") as exc:
        load(repo)
    assert exc.value.line in (3, 4)


def test_duplicate_key_is_an_error(repo: Path) -> None:
    write(repo / "values/dev/glance.yaml", "replicas: 1\nreplicas: 2\n")
    commit(repo)
    with pytest.raises(ConfigError, match=r"values/dev/glance\.yaml:2: .*duplicate key 'replicas'"):
        load(repo)


def test_values_file_must_be_a_mapping(repo: Path) -> None:
    write(repo / "values/dev/glance.yaml", "- a\n- b\n")
    commit(repo)
    with pytest.raises(ConfigError, match=r"values/dev/glance\.yaml:1: values must be a mapping"):
        load(repo)


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (
            lambda s: s["components"]["glance"].update(timeout="soon"),
            r"values/dev/cluster\.yaml:\d+: components\.glance\.timeout: invalid duration 'soon'",
        ),
        (
            lambda s: s["components"]["glance"].update(colour="red"),
            r"values/dev/cluster\.yaml:\d+: components\.glance\.colour: Extra inputs are not permitted",
        ),
        (
            lambda s: s["components"]["glance"].update(needs=["keystone", "swift"]),
            r"values/dev/cluster\.yaml:\d+: components\.glance\.needs: unknown component 'swift' in needs of 'glance'",
        ),
        (
            lambda s: s["components"]["glance"].update(chart="charts/openstack/nope"),
            r"values/dev/cluster\.yaml:\d+: components\.glance\.chart: charts/openstack/nope: no chart directory",
        ),
        (
            lambda s: s["components"]["glance"].update(release="Bad_Name"),
            r"components\.glance\.release: String should match pattern",
        ),
        (
            lambda s: s["components"]["glance"].update(chart="oci://registry.example/glance"),
            r"components\.glance: a remote chart \(repo or oci://\) needs `version`",
        ),
        (lambda s: s.pop("components"), r"values/dev/cluster\.yaml:1: components: Field required"),
    ],
)
def test_schema_errors_name_file_line_and_key(repo: Path, mutate, pattern: str) -> None:
    spec = yaml.safe_load((repo / "values/dev/cluster.yaml").read_text())
    mutate(spec)
    write_cluster(repo, "dev", spec)
    commit(repo)
    with pytest.raises(ConfigError, match=pattern):
        load(repo)


def test_schema_error_line_points_at_the_key(repo: Path) -> None:
    text = (repo / "values/dev/cluster.yaml").read_text().replace("  glance:\n", "  glance:\n    colour: red\n")
    write(repo / "values/dev/cluster.yaml", text)
    commit(repo)
    with pytest.raises(ConfigError) as exc:
        load(repo)
    line = text.splitlines().index("    colour: red") + 1
    assert exc.value.line == line and exc.value.key == "components.glance.colour"


def test_unknown_cluster(repo: Path) -> None:
    with pytest.raises(ConfigError, match=r"no such cluster 'qa': values/qa/cluster\.yaml not found"):
        load(repo, "qa")


def test_remote_chart_digest_is_ref_and_version(repo: Path) -> None:
    spec = yaml.safe_load((repo / "values/dev/cluster.yaml").read_text())
    spec["components"]["memcached"] = {"chart": "memcached", "repo": "https://charts.example", "version": "1.0.0"}
    write_cluster(repo, "dev", spec)
    commit(repo)
    one = load(repo).components["memcached"]
    spec["components"]["memcached"]["version"] = "1.0.1"
    write_cluster(repo, "dev", spec)
    commit(repo)
    two = load(repo).components["memcached"]
    assert not one.chart.local and one.chart.chart_version == "1.0.0" and one.digest != two.digest


def test_bootstrap_steps_parse_and_their_inputs_feed_the_digest(repo: Path) -> None:
    spec = yaml.safe_load((repo / "values/dev/cluster.yaml").read_text())
    spec["components"]["keystone"]["bootstrap"] = [
        {"name": "db-sync", "image": "keystone_db_sync", "inputs": ["conf.keystone.database"], "timeout": "10m"},
        {"name": "register", "script": "bootstrap/keystone/reg.sh.j2", "when": "after", "always": True},
    ]
    write_cluster(repo, "dev", spec)
    write(repo / "bootstrap/keystone/db-sync.sh.j2", "keystone-manage db_sync # {{ release }} in {{ namespace }}\n")
    write(repo / "bootstrap/keystone/reg.sh.j2", "echo {{ values.images.tags.keystone_db_sync }}\n")
    values = {"images": {"tags": {"keystone_db_sync": "ks:1"}}, "conf": {"keystone": {"database": "a"}}}
    write_values(repo, "dev", "keystone", values)
    commit(repo)
    ks = load(repo).components["keystone"]
    sync, reg = ks.bootstrap
    assert (sync.script, sync.when, sync.timeout, sync.inputs) == (
        "bootstrap/keystone/db-sync.sh.j2",
        "before",
        600,
        ("conf.keystone.database",),
    )
    assert (reg.when, reg.always) == ("after", True)

    values["conf"]["keystone"]["database"] = "b"
    write_values(repo, "dev", "keystone", values)
    commit(repo)
    ks2 = load(repo).components["keystone"]
    assert ks2.bootstrap[0].digest != sync.digest and ks2.bootstrap[1].digest == reg.digest
    assert ks2.bootstrap_digest != ks.bootstrap_digest and ks2.digest != ks.digest

    values["images"]["tags"]["keystone_db_sync"] = "ks:2"
    write_values(repo, "dev", "keystone", values)
    commit(repo)
    assert load(repo).components["keystone"].bootstrap[0].digest != ks2.bootstrap[0].digest


def test_missing_bootstrap_script_is_named(repo: Path) -> None:
    spec = yaml.safe_load((repo / "values/dev/cluster.yaml").read_text())
    spec["components"]["keystone"]["bootstrap"] = [{"name": "db-sync"}]
    write_cluster(repo, "dev", spec)
    commit(repo)
    with pytest.raises(ConfigError, match=r"components\.keystone\.bootstrap\.0\.script: .*db-sync\.sh\.j2 not found"):
        load(repo)


def test_bootstrap_template_error_names_script(repo: Path) -> None:
    spec = yaml.safe_load((repo / "values/dev/cluster.yaml").read_text())
    spec["components"]["keystone"]["bootstrap"] = [{"name": "db-sync"}]
    write_cluster(repo, "dev", spec)
    write(repo / "bootstrap/keystone/db-sync.sh.j2", "echo {{ values.nope.deeper }}\n")
    commit(repo)
    with pytest.raises(ConfigError, match=r"bootstrap/keystone/db-sync\.sh\.j2: cannot render"):
        load(repo)


# --- the four values layers -------------------------------------------------------------------------

LAYERS = (
    "values/_common/_global.yaml",
    "values/_common/keystone.yaml",
    "values/dev/_global.yaml",
    "values/dev/keystone.yaml",
)


@pytest.mark.parametrize("present", [(0,), (1,), (2,), (3,), (0, 1), (0, 2), (1, 3), (0, 1, 2), (0, 1, 2, 3)])
def test_layer_order_later_wins_maps_merge_lists_replace(tmp_path: Path, present: tuple[int, ...]) -> None:
    root = init_repo(tmp_path / "r")
    simple_cluster(root)
    for name in ("keystone", "glance"):  # only the layers under test
        (root / f"values/dev/{name}.yaml").unlink()
    for i in present:
        # Each layer sets the shared keys to its own name and adds one key of its own.
        write(root / LAYERS[i], yaml.safe_dump({"who": {"name": LAYERS[i], f"only{i}": i}, "hosts": [LAYERS[i]]}))
    commit(root)
    d = load(root)
    ks, last = d.components["keystone"], LAYERS[present[-1]]
    assert ks.values == {"who": {"name": last, **{f"only{i}": i for i in present}}, "hosts": [last]}
    assert ks.values_files == tuple(LAYERS[i] for i in present)
    # The `_global` layers reach every component of the cluster; the component layers only keystone.
    globals_ = [LAYERS[i] for i in present if "_global" in LAYERS[i]]
    glance = d.components["glance"]
    assert glance.values_files == tuple(globals_)
    assert glance.values.get("who", {}).get("name") == (globals_[-1] if globals_ else None)


def test_global_layers_of_one_cluster_do_not_reach_another(repo: Path) -> None:
    simple_cluster(repo, "prod")
    write(repo / "values/_common/_global.yaml", "global: {tls: {enabled: false}, database: {port: 3306}}\n")
    write(repo / "values/dev/_global.yaml", "global: {region: DevOne, database: {host: db.dev}}\n")
    commit(repo)
    dev, prod = load(repo).components["nova"], load(repo, "prod").components["nova"]
    assert dev.values["global"] == {
        "tls": {"enabled": False},
        "database": {"port": 3306, "host": "db.dev"},
        "region": "DevOne",
    }
    assert prod.values["global"] == {"tls": {"enabled": False}, "database": {"port": 3306}}
    assert "values/dev/_global.yaml" not in prod.values_files


@pytest.mark.parametrize("layer", ["values/_common/_global.yaml", "values/dev/_global.yaml"])
def test_global_layer_yaml_errors_name_the_file_and_line(repo: Path, layer: str) -> None:
    write(repo / layer, "global:\n  region: R1\n  tls: {enabled: true\n  domain: x\n")
    commit(repo)
    with pytest.raises(ConfigError, match=rf"^{re.escape(layer)}:\d+: invalid YAML") as exc:
        load(repo)
    assert exc.value.file == layer and exc.value.line in (3, 4)

    write(repo / layer, "global:\n  region: R1\n  region: R2\n")
    commit(repo)
    with pytest.raises(ConfigError, match=rf"^{re.escape(layer)}:3: .*duplicate key 'region'"):
        load(repo)

    write(repo / layer, "- region\n")
    commit(repo)
    with pytest.raises(ConfigError, match=rf"^{re.escape(layer)}:1: values must be a mapping, not list"):
        load(repo)


def _deployed(desired: DesiredCluster) -> dict[ReleaseId, ObservedRelease]:
    """Every component deployed as desired (what a successful apply records on the releases)."""
    return {
        ReleaseId(c.namespace, c.release): ObservedRelease(
            namespace=c.namespace,
            name=c.release,
            revision=1,
            status="deployed",
            chart_name=c.chart.name,
            chart_version=c.chart.chart_version,
            description="Install complete",
            config=c.values,
            labels={"digest": c.digest, "chart": c.chart.digest, "bootstrap": c.bootstrap_digest},
        )
        for c in desired.components.values()
    }


def _changes(plan: Plan) -> dict[str, tuple[str, ...]]:
    return {a.component: a.reasons[0].paths for a in plan.actions if a.action is not ActionKind.none}


def test_cluster_global_change_plans_exactly_the_components_whose_merged_values_change(repo: Path) -> None:
    simple_cluster(repo, "prod")
    write(repo / "values/dev/_global.yaml", "global: {region: DevOne}\n")
    write(repo / "values/prod/_global.yaml", "global: {region: ProdOne}\n")
    # keystone pins its own region: the cluster layer is under it, so its merged values will not change.
    write_values(repo, "dev", "keystone", {"global": {"region": "Pinned"}})
    commit(repo)
    before = {c: load(repo, c) for c in ("dev", "prod")}
    assert {_changes(make_plan(before[c], _deployed(before[c]))) == {} for c in before} == {True}

    write(repo / "values/dev/_global.yaml", "global: {region: DevTwo}\n")
    commit(repo)
    dev, prod = load(repo), load(repo, "prod")
    changed = {"rabbitmq", "memcached", "glance", "placement", "nova"}
    assert _changes(make_plan(dev, _deployed(before["dev"]))) == {n: ("global.region",) for n in changed}
    assert _changes(make_plan(prod, _deployed(before["prod"]))) == {}
    assert {n for n, c in dev.components.items() if c.digest != before["dev"].components[n].digest} == changed


def test_common_global_change_plans_every_cluster_but_not_where_overridden(repo: Path) -> None:
    simple_cluster(repo, "prod")
    write(repo / "values/_common/_global.yaml", "global: {database: {port: 3306}}\n")
    write(repo / "values/prod/_global.yaml", "global: {database: {port: 3307}}\n")
    commit(repo)
    before = {c: {n: x.digest for n, x in load(repo, c).components.items()} for c in ("dev", "prod")}
    write(repo / "values/_common/_global.yaml", "global: {database: {port: 3308}}\n")
    commit(repo)
    after = {c: {n: x.digest for n, x in load(repo, c).components.items()} for c in ("dev", "prod")}
    assert {n for n in after["dev"] if after["dev"][n] != before["dev"][n]} == set(before["dev"])
    assert after["prod"] == before["prod"]  # prod's own layer wins: its merged values did not change


def test_global_layer_is_parsed_once_per_content(repo: Path) -> None:
    simple_cluster(repo, "prod")
    write(repo / "values/_common/_global.yaml", "global: {region: R}\n")
    commit(repo)
    src = GitSource(str(repo))
    sha = src.resolve("HEAD")
    calls: list[str] = []
    read = src.read_file

    def counting(commit_: str, path: str) -> bytes | None:
        calls.append(path)
        return read(commit_, path)

    src.read_file = counting  # type: ignore[method-assign]
    for cluster in ("dev", "prod"):
        load_cluster(src, sha, cluster)
    assert calls.count("values/_common/_global.yaml") == 1


def test_remediation_component_keys_override_the_cluster_default_key_by_key(repo: Path) -> None:
    spec = yaml.safe_load((repo / "values/dev/cluster.yaml").read_text())
    spec["remediation"] = {"retries": 2, "on_failure": "uninstall"}
    spec["components"]["glance"]["remediation"] = {"on_failure": "none"}
    spec["components"]["nova"]["remediation"] = {"retries": 0}
    write_cluster(repo, "dev", spec)
    commit(repo)
    d = load(repo)
    got = {n: (c.remediation.retries, c.remediation.on_failure) for n, c in d.components.items()}
    assert got["glance"] == (2, "none") and got["nova"] == (0, "uninstall") and got["keystone"] == (2, "uninstall")
    # Remediation is how to deploy, not what: it is not part of the digest (no redeploy when it changes).
    del spec["remediation"]
    write_cluster(repo, "dev", spec)
    commit(repo)
    assert load(repo).components["keystone"].digest == d.components["keystone"].digest
    assert load(repo).components["keystone"].remediation.on_failure is None


@pytest.mark.parametrize(
    ("remediation", "pattern"),
    [
        ({"retries": -1}, r"values/dev/cluster\.yaml:\d+: components\.glance\.remediation\.retries: .*greater than"),
        ({"on_failure": "explode"}, r"components\.glance\.remediation\.on_failure: Input should be 'rollback'"),
    ],
)
def test_bad_remediation_names_the_key(repo: Path, remediation: dict[str, object], pattern: str) -> None:
    spec = yaml.safe_load((repo / "values/dev/cluster.yaml").read_text())
    spec["components"]["glance"]["remediation"] = remediation
    write_cluster(repo, "dev", spec)
    commit(repo)
    with pytest.raises(ConfigError, match=pattern):
        load(repo)
