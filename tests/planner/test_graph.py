"""Topological waves, cycles and unknown needs (pure)."""

from __future__ import annotations

import pytest

from deploy_manager.models.errors import ConfigError, CycleError
from deploy_manager.planner.graph import dependents, find_cycle, topo_waves


@pytest.mark.parametrize(
    ("needs", "waves"),
    [
        ({}, []),
        ({"a": []}, [["a"]]),
        ({"b": ["a"], "a": []}, [["a"], ["b"]]),
        (
            {"rmq": [], "mc": [], "ks": ["rmq", "mc"], "gl": ["ks"], "pl": ["ks"], "nova": ["gl", "pl"], "x": []},
            [["mc", "rmq", "x"], ["ks"], ["gl", "pl"], ["nova"]],
        ),
    ],
)
def test_waves(needs: dict, waves: list) -> None:
    assert topo_waves(needs) == waves


@pytest.mark.parametrize(
    ("needs", "cycle"),
    [
        ({"a": ["a"]}, "a -> a"),
        ({"a": ["b"], "b": ["a"]}, "a -> b -> a"),
        ({"x": [], "a": ["x", "c"], "b": ["a"], "c": ["b"]}, "a -> c -> b -> a"),
    ],
)
def test_cycles_are_named(needs: dict, cycle: str) -> None:
    with pytest.raises(CycleError, match=f"values/dev/cluster.yaml: needs cycle: {cycle}$"):
        topo_waves(needs, file="values/dev/cluster.yaml")


def test_unknown_need_is_named() -> None:
    with pytest.raises(ConfigError, match="unknown component 'swift' in needs of 'glance'"):
        topo_waves({"glance": ["swift"]})


def test_find_cycle_none_and_dependents() -> None:
    needs = {"a": [], "b": ["a"], "c": ["b"], "d": []}
    assert find_cycle(needs) is None
    assert dependents(needs, "a") == {"b", "c"}
    assert dependents(needs, "d") == set()
