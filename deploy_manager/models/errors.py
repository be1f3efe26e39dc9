"""The error tree of the pipeline.

Every error the CLI/service reports to a user derives from `DeployManagerError` and carries one precise,
single-line message (file, line, key, release). `temporary` says whether retrying later may succeed
(an unreachable cluster) or not (bad input in the repo: only a new commit fixes it).
"""

from __future__ import annotations


class DeployManagerError(Exception):
    """Base of every error reported to the user as one line."""

    temporary: bool = False


class SourceError(DeployManagerError):
    """The git repository cannot be read (bad path, clone/fetch failure, missing file)."""


class UnknownRevision(SourceError):
    """A branch, tag or sha that does not name a commit."""


class ConfigError(DeployManagerError):
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


class ChartError(DeployManagerError):
    """A chart is missing, malformed, or fails to render."""


class KubeUnavailable(DeployManagerError):
    """The Kubernetes API cannot be reached or refused the request."""

    temporary = True
