"""Errors raised by the patch functions; the server maps them to Kubernetes ``Status`` answers."""

from __future__ import annotations

from typing import Any


class PatchError(ValueError):
    """A patch that cannot be applied. ``code`` is the HTTP status a real apiserver gives.

    400 BadRequest for a malformed patch document, 422 Unprocessable Entity for a well-formed
    patch that does not apply to this object (failed ``test`` op, missing path, list of lists …).
    """

    def __init__(self, message: str, code: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def status(self) -> dict[str, Any]:
        """The ``Status`` object an apiserver answers with."""
        reason = "BadRequest" if self.code == 400 else "Invalid"
        return _status(self.code, reason, self.message, {})


class ApplyConflict(Exception):
    """Server-side apply would change fields another manager owns (HTTP 409, reason Conflict).

    ``conflicts`` holds one line per field in the apiserver's wording, e.g.
    ``conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas`` (Update
    managers carry "using <apiVersion>", Apply managers only their name);
    ``fields`` holds the same as (manager, field path) pairs for ``Status.details.causes``.
    """

    def __init__(
        self, conflicts: list[str], fields: list[tuple[str, str]] | None = None, owners: list[str] | None = None
    ) -> None:
        self.conflicts = conflicts
        self.fields = fields or []
        self.owners = owners or [f'conflict with "{m}"' for m, _ in self.fields]
        n = len(conflicts)
        if n == 1:
            msg = f"Apply failed with 1 conflict: {conflicts[0]}"
        else:
            msg = f"Apply failed with {n} conflicts: " + "\n".join(conflicts)
        super().__init__(msg)
        self.message = msg
        self.code = 409

    def status(self, name: str = "", kind: str = "", group: str = "") -> dict[str, Any]:
        """The apiserver's 409 ``Status``: one ``FieldManagerConflict`` cause per field."""
        causes = [
            {"reason": "FieldManagerConflict", "message": owner, "field": path}
            for owner, (_, path) in zip(self.owners, self.fields, strict=False)
        ]
        details: dict[str, Any] = {"causes": causes}
        details.update({k: v for k, v in (("name", name), ("kind", kind), ("group", group)) if v})
        return _status(409, "Conflict", self.message, details)


def _status(code: int, reason: str, message: str, details: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        out["details"] = details
    return out
