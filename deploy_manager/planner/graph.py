"""The `needs` graph: validation and topological waves (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from deploy_manager.models.errors import ConfigError, CycleError


def topo_waves(needs: Mapping[str, Sequence[str]], *, file: str | None = None) -> list[list[str]]:
    """Group components into waves: wave 0 needs nothing, wave n needs only earlier waves.

    Raises ConfigError for a need that is not a component and CycleError naming one cycle (a -> b -> a).
    """
    for name in sorted(needs):
        for need in needs[name]:
            if need not in needs:
                raise ConfigError(f"unknown component {need!r} in needs of {name!r}", file=file)
    cycle = find_cycle(needs)
    if cycle:
        raise CycleError(f"needs cycle: {' -> '.join(cycle)}", file=file)
    wave: dict[str, int] = {}

    def depth(name: str) -> int:
        if name not in wave:
            wave[name] = 1 + max((depth(n) for n in needs[name]), default=-1)
        return wave[name]

    for name in needs:
        depth(name)
    out: list[list[str]] = [[] for _ in range(max(wave.values(), default=-1) + 1)]
    for name in sorted(wave):
        out[wave[name]].append(name)
    return out


def find_cycle(needs: Mapping[str, Sequence[str]]) -> list[str] | None:
    """One cycle as a closed path [a, b, a], or None. Deterministic: visits names in sorted order."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(needs, white)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        color[node] = grey
        stack.append(node)
        for nxt in sorted(needs[node]):
            if nxt not in color:
                continue
            if color[nxt] == grey:
                return [*stack[stack.index(nxt) :], nxt]
            if color[nxt] == white:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        color[node] = black
        return None

    for name in sorted(needs):
        if color[name] == white:
            found = visit(name)
            if found:
                return found
    return None


def dependents(needs: Mapping[str, Sequence[str]], root: str) -> set[str]:
    """Every component that needs `root`, directly or transitively."""
    out: set[str] = set()
    frontier = [root]
    while frontier:
        cur = frontier.pop()
        for name, ns in needs.items():
            if cur in ns and name not in out:
                out.add(name)
                frontier.append(name)
    return out
