"""Values layers: deep merge, dotted value paths, and which keys are secret.

Merge rule (documented in README "Values layout"): later layers win; mappings merge key by key,
recursively; lists and scalars replace the earlier value as a whole.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

_SECRET_WORDS = re.compile(r"password|passwd|token|secret", re.IGNORECASE)


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256_hex(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        raw = part.encode() if isinstance(part, str) else part
        h.update(len(raw).to_bytes(8, "big"))  # length-prefixed: ("ab","c") != ("a","bc")
        h.update(raw)
    return h.hexdigest()


def format_path(path: Iterable[str]) -> str:
    return ".".join(path)


def get_path(values: Any, path: str) -> Any:
    """The value at a dotted path, or None if any segment is missing."""
    cur = values
    for seg in path.split(".") if path else []:
        if isinstance(cur, dict) and seg in cur:
            cur = cur[seg]
        elif isinstance(cur, list) and seg.isdigit() and int(seg) < len(cur):
            cur = cur[int(seg)]
        else:
            return None
    return cur


def is_secret_key(key: str) -> bool:
    """password/passwd/token/secret anywhere in the key, or a key that is or ends in `key`/`keys`."""
    if _SECRET_WORDS.search(key):
        return True
    low = key.lower()
    return low in ("key", "keys") or low.endswith(("key", "keys", "_key", "-key"))


def secret_values(values: Any, secret_paths: Iterable[str] = ()) -> set[str]:
    """Every scalar value stored under a secret-looking key or a path marked secret (for redaction)."""
    out: set[str] = set()
    marked = set(secret_paths)

    def walk(node: Any, path: tuple[str, ...], secret: bool) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                sub = (*path, str(k))
                walk(v, sub, secret or is_secret_key(str(k)) or format_path(sub) in marked)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*path, str(i)), secret)
        elif secret and node is not None and not isinstance(node, bool):
            text = str(node)
            if len(text) >= 4:  # redacting "1" or "no" everywhere would destroy the output
                out.add(text)

    walk(values, (), False)
    return out
