"""JSON patch (RFC 6902), what ``application/json-patch+json`` means to the apiserver.

Built on the ``jsonpatch`` library; its exceptions become :class:`PatchError` with the status
the apiserver uses: 400 when the document is not a list of operations, 422 when an operation
does not apply (missing path, failed ``test``).
"""

from __future__ import annotations

from typing import Any

import jsonpatch as _jsonpatch
import jsonpointer

from .errors import PatchError

_OPS = {"add", "remove", "replace", "move", "copy", "test"}


def apply_json_patch(doc: Any, ops: Any) -> Any:
    """Apply a list of RFC 6902 operations to ``doc``; returns a new document, ``doc`` is unchanged."""
    if not isinstance(ops, list):
        raise PatchError("json patch must be a JSON array of operations", 400)
    for i, op in enumerate(ops):
        if not isinstance(op, dict):
            raise PatchError(f"json patch operation {i} is not an object", 400)
        if op.get("op") not in _OPS:
            raise PatchError(f"json patch operation {i}: unexpected kind of operation {op.get('op')!r}", 400)
        if not isinstance(op.get("path"), str):
            raise PatchError(f"json patch operation {i} ({op['op']}): missing string 'path'", 400)
    try:
        return _jsonpatch.JsonPatch(ops).apply(doc, in_place=False)
    except _jsonpatch.InvalidJsonPatch as e:
        raise PatchError(f"invalid json patch: {e}", 400) from None
    except _jsonpatch.JsonPatchTestFailed as e:
        raise PatchError(f"json patch test operation failed: {e}", 422) from None
    except (_jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as e:
        raise PatchError(f"json patch cannot be applied: {e}", 422) from None
    except (TypeError, KeyError, IndexError) as e:  # e.g. a path through a scalar
        raise PatchError(f"json patch cannot be applied: {e}", 422) from None
