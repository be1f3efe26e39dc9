"""`RunCancel`: how the run queue stops a run early (shutdown, a superseding commit) without harming releases.

Two levels, asked by the queue and observed by the run path:
- `stop(status, reason)`: start nothing new. The executor submits no further component, a step kind starts no
  further helm command or bootstrap phase; running helm commands and bootstrap Jobs finish. The run is
  recorded with `status` (`interrupted` for a shutdown, `superseded` for a newer commit) unless everything
  finished anyway.
- `end_helm(components)`: end the running helm commands of those components (None: all of them). The helm
  runner sends SIGTERM: helm 4 cancels its wait and marks the release `failed` (recoverable by the next
  upgrade or a rollback), where SIGKILL would leave it `pending-upgrade`. Bootstrap Jobs are never ended
  (a database migration must not be cut).

Step kinds report which components are inside a helm write (`helm_started`/`helm_finished`), with the digest
being written, so the queue can tell whether a newer commit changes a component that hangs in `--wait`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from deploy_manager.models.errors import TemporaryError
from deploy_manager.models.run import RunStatus


class RunStopped(TemporaryError):
    """The run was stopped before this step could start its next command (shutdown or superseded)."""


class RunCancel:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.status: RunStatus = RunStatus.interrupted
        self.reason = ""
        self._end_all = False
        self._end: set[str] = set()
        self._in_helm: dict[str, str] = {}  # component -> digest being written
        # component -> what it is doing now (for the status page's live progress; issue 14)
        self._activity: dict[str, str] = {}

    # -- asked by the queue -----------------------------------------------------------------------------
    def stop(self, status: RunStatus, reason: str) -> None:
        with self._lock:
            if not self._stopped.is_set():
                self.status, self.reason = status, reason
                self._stopped.set()

    def end_helm(self, components: set[str] | None = None) -> None:
        with self._lock:
            if components is None:
                self._end_all = True
            else:
                self._end |= components

    def in_helm(self) -> dict[str, str]:
        """The components inside a helm write now, with the digest each is writing."""
        with self._lock:
            return dict(self._in_helm)

    # -- observed by the run path -----------------------------------------------------------------------
    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def check(self, what: str) -> None:
        """Raise `RunStopped` if the run was stopped: `what` (e.g. "helm upgrade") is not started."""
        if self._stopped.is_set():
            raise RunStopped(f"{what} not started: {self.reason}")

    def helm_ended(self, component: str) -> bool:
        """True when the helm command of `component` must be ended now."""
        with self._lock:
            return self._end_all or component in self._end

    def helm_started(self, component: str, digest: str, what: str = "helm write") -> None:
        with self._lock:
            self._in_helm[component] = digest
            self._activity[component] = what

    def helm_finished(self, component: str) -> None:
        with self._lock:
            self._in_helm.pop(component, None)
            self._activity.pop(component, None)

    @contextlib.contextmanager
    def activity(self, component: str, what: str) -> Iterator[None]:
        """Mark `component` as doing `what` (a bootstrap phase, a check) while the block runs."""
        with self._lock:
            previous = self._activity.get(component)
            self._activity[component] = what
        try:
            yield
        finally:
            with self._lock:
                if previous is None:
                    self._activity.pop(component, None)
                else:
                    self._activity[component] = previous

    def activities(self) -> dict[str, str]:
        """component -> what it is doing now (helm install/upgrade, a bootstrap phase …)."""
        with self._lock:
            return dict(self._activity)
