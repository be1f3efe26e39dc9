"""JSON merge patch (RFC 7386), what ``application/merge-patch+json`` means to the apiserver."""

from __future__ import annotations

import copy
from typing import Any


def json_merge_patch(target: Any, patch: Any) -> Any:
    """Return ``target`` with ``patch`` merged in (RFC 7386 section 2 MergePatch). Inputs are not mutated.

    Objects merge member by member, ``null`` removes a member, anything else (arrays included)
    replaces the target value wholesale.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result
