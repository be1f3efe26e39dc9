"""YAML loading with file/line errors and a key-path -> line index for schema errors.

Timestamps stay strings: Helm reads values through sigs.k8s.io/yaml, which does the same, and the
values must hash and round-trip through JSON identically.

Every YAML read from the repository is bounded before it is built: aliases may add at most
`MAX_ALIAS_NODES` nodes and `MAX_ALIAS_CHARS` characters of scalars to the document, an alias may not refer
to a node that contains it, and nesting stops at `MAX_DEPTH`. PyYAML shares aliased objects, so a
"billion laughs" file costs nothing to load but explodes the first time the values are merged, hashed or
sent to helm (JSON has no aliases); helm's own parser refuses such files as "excessive aliasing" too. The
check reads the parser's events once (no tree is built) and names the line of the offending alias.
"""

from __future__ import annotations

from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from deploy_manager.models.errors import ConfigError

_M = TypeVar("_M", bound=BaseModel)

# libyaml's parser when available (several times faster); the resolver and constructor stay Python.
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[misc,valid-type]
    pass


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _no_duplicates(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return dict(loader.construct_mapping(node, deep=deep))


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


MAX_ALIAS_NODES = 100_000
MAX_ALIAS_CHARS = 16 * 1024 * 1024
MAX_DEPTH = 100  # values are a handful of levels deep; our merge and JSON encoder recurse


def check_expansion(text: bytes | str, file: str) -> None:
    """Raise `ConfigError` (file:line) when aliases would expand the document past the bounds, an alias refers
    to a node that contains it, or nesting is deeper than MAX_DEPTH (see the module docstring)."""
    if isinstance(text, bytes) and b"*" not in text or isinstance(text, str) and "*" not in text:
        aliases = False  # no alias possible: only the depth needs checking
    else:
        aliases = True
    sizes: dict[str, tuple[int, int]] = {}  # anchor -> (nodes, scalar chars) once expanded
    stack: list[list[Any]] = []  # open collections: [anchor, nodes, chars]
    added_nodes = added_chars = 0

    def add(nodes: int, chars: int) -> None:
        if stack:
            stack[-1][1] += nodes
            stack[-1][2] += chars

    def fail(message: str, event: yaml.Event) -> ConfigError:
        return ConfigError(message, file=file, line=event.start_mark.line + 1 if event.start_mark else None)

    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.DocumentStartEvent):
            sizes.clear()  # anchors (and the budget) are per document
            added_nodes = added_chars = 0
        elif isinstance(event, yaml.CollectionStartEvent):
            if len(stack) >= MAX_DEPTH:
                raise fail(f"invalid YAML: nested deeper than {MAX_DEPTH} levels", event)
            stack.append([event.anchor, 1, 0])
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, nodes, chars = stack.pop()
            if anchor is not None:
                sizes[anchor] = (nodes, chars)
            add(nodes, chars)
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor is not None and aliases:
                sizes[event.anchor] = (1, len(event.value))
            add(1, len(event.value))
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in sizes:
                if any(frame[0] == event.anchor for frame in stack):
                    raise fail(f"invalid YAML: alias *{event.anchor} refers to a node that contains it", event)
                continue  # an undefined alias: the parser reports it
            nodes, chars = sizes[event.anchor]
            added_nodes += nodes
            added_chars += chars
            if added_nodes > MAX_ALIAS_NODES or added_chars > MAX_ALIAS_CHARS:
                raise fail(
                    f"invalid YAML: excessive aliasing: *{event.anchor} takes the aliases' expansion past"
                    f" {MAX_ALIAS_NODES} nodes or {MAX_ALIAS_CHARS} characters",
                    event,
                )
            add(nodes, chars)


def load_yaml(text: bytes | str, file: str) -> Any:
    """Parse one YAML document, bounded (see `check_expansion`); errors name the file and line."""
    try:
        check_expansion(text, file)
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"invalid YAML: {problem}", file=file, line=mark.line + 1 if mark else None) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=file) from exc
    except RecursionError as exc:  # the composer recurses per level; MAX_DEPTH normally stops it first
        raise ConfigError("invalid YAML: nested too deeply", file=file) from exc


def load_all_bounded(text: str, file: str) -> list[Any]:
    """Every document of a multi-document stream (helm's rendered manifests), with the same bounds; plain safe
    loading otherwise (timestamps and duplicate keys as PyYAML reads them)."""
    check_expansion(text, file)
    return list(yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


def key_lines(text: bytes | str) -> dict[tuple[str, ...], int]:
    """Map key path -> 1-based line, for error messages (only computed when there is an error)."""
    lines: dict[tuple[str, ...], int] = {}
    node = yaml.compose(text, Loader=_Loader)
    if node is not None:
        _index(node, (), lines)
    return lines


def _index(node: yaml.Node, path: tuple[str, ...], out: dict[tuple[str, ...], int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            sub = (*path, str(key_node.value))
            out[sub] = key_node.start_mark.line + 1
            _index(value_node, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*path, str(i)), out)


def line_of(lines: dict[tuple[str, ...], int], path: tuple[str, ...]) -> int | None:
    """The line of the deepest existing prefix of `path` (a missing key reports its parent)."""
    for n in range(len(path), -1, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return None


def validate_model(model: type[_M], data: Any, raw: bytes, path: str) -> _M:
    """`model` built from a YAML document's `data`; its first schema error as a ConfigError naming the line and
    key (the count of the others after it)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = tuple(str(p) for p in err["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        msg = err["msg"].removeprefix("Value error, ")
        raise ConfigError(
            f"{msg}{more}", file=path, line=line_of(key_lines(raw), key), key=".".join(key) or "<root>"
        ) from exc
