"""Value-path diff between deployed (Helm `config`) and desired values (pure)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

_MISSING = object()


def format_path(path: tuple[str, ...]) -> str:
    return ".".join(path)


def diff_paths(old: Any, new: Any, prefix: tuple[str, ...] = ()) -> list[str]:
    """Dotted paths whose values differ; a key present on one side only is reported at that key."""
    return sorted(format_path(p) for p in _diff(old, new, prefix))


def _diff(old: Any, new: Any, prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            a, b = old.get(key, _MISSING), new.get(key, _MISSING)
            if a is _MISSING or b is _MISSING:
                yield (*prefix, str(key))
            else:
                yield from _diff(a, b, (*prefix, str(key)))
    elif not _equal(old, new):
        yield prefix if prefix else ("<root>",)


def _equal(a: Any, b: Any) -> bool:
    # Helm stores values as JSON numbers (1.0 comes back as 1), so 1 == 1.0; but True is not 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return bool(a == b)
