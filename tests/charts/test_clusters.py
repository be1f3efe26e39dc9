"""The example clusters: well-formed cluster.yaml files whose `needs` graph is acyclic and starts
OpenStack in the documented order (values/README.md)."""

from __future__ import annotations

import graphlib

import pytest

from deploy_manager.desired.loader import GLOBAL_LAYER

from .layers import CLUSTERS, ROOT, VALUES, cluster_file, components, load_yaml

# "a must be deployed (and ready) before b", whenever the cluster runs both: openstack-helm's order
# rabbitmq -> memcached -> keystone -> glance -> placement -> nova -> neutron -> cinder -> horizon,
# relaxed to the real dependencies so independent components deploy in parallel.
DOCUMENTED_ORDER = [
    ("rabbitmq", "keystone"),
    ("memcached", "keystone"),
    ("keystone", "glance"),
    ("keystone", "placement"),
    ("glance", "nova"),
    ("placement", "nova"),
    ("placement", "neutron"),
    ("glance", "cinder"),
    ("nova", "horizon"),
    ("neutron", "horizon"),
    ("cinder", "horizon"),
]
KNOWN_KEYS = {"chart", "namespace", "release", "needs", "timeout", "version", "repo", "bootstrap"}


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_cluster_file_shape(cluster: str) -> None:
    spec = cluster_file(cluster)
    assert isinstance(spec["namespace"], str) and spec["namespace"]
    for name, comp in spec["components"].items():
        assert set(comp) <= KNOWN_KEYS, f"{cluster}/{name}: unknown keys {set(comp) - KNOWN_KEYS}"
        assert (ROOT / comp["chart"] / "Chart.yaml").is_file(), f"{cluster}/{name}: no chart at {comp['chart']}"
        names = [s["name"] for s in comp.get("bootstrap", [])]
        assert len(names) == len(set(names)), f"{cluster}/{name}: duplicate step names"
    # A values file for a component the cluster does not run is a typo waiting to bite.
    for path in (VALUES / cluster).glob("*.yaml"):
        assert path.stem in ("cluster", GLOBAL_LAYER) or path.stem in spec["components"], (
            f"{path}: not a component of {cluster}"
        )


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_needs_graph_is_acyclic_and_follows_the_documented_order(cluster: str) -> None:
    comps = {c.name: c for c in components(cluster)}
    graph = {name: set(c.needs) for name, c in comps.items()}
    for name, needs in graph.items():
        assert needs <= set(graph), f"{cluster}/{name} needs unknown {needs - set(graph)}"
    order = list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError on a cycle

    def ancestors(name: str) -> set[str]:
        seen: set[str] = set()
        stack = list(graph[name])
        while stack:
            dep = stack.pop()
            if dep not in seen:
                seen.add(dep)
                stack.extend(graph[dep])
        return seen

    for before, after in DOCUMENTED_ORDER:
        if before in graph and after in graph:
            assert before in ancestors(after), f"{cluster}: {after} must (transitively) need {before}"
    assert order.index("keystone") < order.index("horizon") if "horizon" in graph else True


def test_the_example_clusters_exist_and_differ() -> None:
    assert {"demo", "dev", "prod-east-1", "prod-west-1"} <= set(CLUSTERS)


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_cluster_facts_are_written_once(cluster: str) -> None:
    """`global.*` (region, domain, TLS, database, message queue) lives only in the `_global` layers, so a
    cluster fact is one edit; component files state only what is particular to their component."""
    for path in [*(VALUES / cluster).glob("*.yaml"), *(VALUES / "_common").glob("*.yaml")]:
        if path.stem in ("cluster", GLOBAL_LAYER):
            continue
        assert "global" not in load_yaml(path), f"{path}: cluster facts belong in {path.parent}/{GLOBAL_LAYER}.yaml"
