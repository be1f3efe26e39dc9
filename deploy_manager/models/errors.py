"""The one error tree of deploy-manager, classed by what a retry can do.

Every error the CLI/service reports to a user derives from `DeployManagerError` and carries one precise,
single-line message (file, line, key, release). Each concrete error is either

- `PermanentError`: retrying the same commit cannot help (bad input in the repo, a chart that does not
  render, a request the Kubernetes API refuses: 400/401/403/404/409/422); only a new commit or an
  operator fixes it;
- `TemporaryError`: retrying later may succeed (an unreachable or overloaded API, a lease held by
  someone else, a service shutting down); `delay` is a hint in seconds (None: the caller's backoff).

`temporary` is the same verdict as a flag (the HTTP layer maps it to 503 vs 422). Code that acts on
failures (retries, remediation) catches `TemporaryError` / `PermanentError`, not concrete classes.
"""

from __future__ import annotations


class DeployManagerError(Exception):
    """Base of every error reported to the user as one line."""

    temporary: bool = False


class PermanentError(DeployManagerError):
    """A retry of the same work cannot succeed."""

    temporary = False


class TemporaryError(DeployManagerError):
    """A retry later may succeed; `delay` (seconds) hints when."""

    temporary = True

    def __init__(self, message: str = "", *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


# -- the values repository ----------------------------------------------------------------------------
class SourceError(PermanentError):
    """The git repository cannot be read (bad path, clone/fetch failure, missing file)."""


class UnknownRevision(SourceError):
    """A branch, tag or sha that does not name a commit."""


class ConfigError(PermanentError):
    """cluster.yaml or a values file is invalid: names the file and the line or key path."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None, key: str | None = None):
        where = file or ""
        if file and line is not None:
            where = f"{file}:{line}"
        if key:
            where = f"{where}: {key}" if where else key
        super().__init__(f"{where}: {message}" if where else message)
        self.file = file
        self.line = line
        self.key = key


class SymlinkError(ConfigError):
    """A symlink in the repository points outside its tree at that commit (or at nothing, or in a loop).

    Names the link (`file`); raised before anything is written, so helm never reads past the repository."""


class CycleError(ConfigError):
    """The `needs` graph has a cycle; the message lists it (a -> b -> a)."""


class ChartError(PermanentError):
    """A chart is missing, malformed, or fails to render."""


class ReleaseRefused(PermanentError):
    """The commit downgrades or skips an OpenStack release (planner/release_guard.py): refused before any write."""


# -- the Kubernetes API -------------------------------------------------------------------------------
class KubeError(DeployManagerError):
    """Any failed Kubernetes API call (the message names the call and the API server)."""


class KubeUnavailable(KubeError, TemporaryError):
    """The Kubernetes API cannot be reached, timed out, or answered 5xx/429: retry later."""


class KubeRejected(KubeError, PermanentError):
    """The API answered a 4xx a retry cannot fix (400 bad request, 401/403 not allowed, 422 invalid)."""


class KubeNotFound(KubeRejected):
    """404: the object is absent (a normal answer for get/delete)."""


class KubeConflict(KubeRejected):
    """409: the object exists already (create), or changed under us (update). Re-read before writing again."""


def kube_error_for(status: int | None) -> type[KubeError]:
    """The class of an API error answer by its HTTP status."""
    if status == 404:
        return KubeNotFound
    if status == 409:
        return KubeConflict
    if status is not None and 400 <= status < 500 and status not in (408, 429):
        return KubeRejected
    return KubeUnavailable


# -- the cluster lease (one run per cluster across instances) -------------------------------------------
class LeaseConflict(TemporaryError):
    """Another writer changed or holds the Lease (optimistic concurrency): read it again and retry."""


class LeaseUnavailable(TemporaryError):
    """The Kubernetes API could not be reached to read or write the Lease."""


class LeaseRejected(PermanentError):
    """The API server refuses the Lease (invalid name, RBAC): no retry can help."""


# -- the service --------------------------------------------------------------------------------------
class QueueStopping(TemporaryError):
    """The service is shutting down and takes no new triggers (the HTTP layer answers 503)."""
