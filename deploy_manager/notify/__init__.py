"""Where operators look (issue 14): commit statuses on GitHub/GHE and a JSON notification on every run end.

Contract:
- Nothing here is on a run's critical path: the run queue tells a `RunNotifier` that a run started (with its
  commit) or ended (its id); the notifier hands the work to one background `Sender` thread and returns at once.
  A full queue drops the job (counted), a dead API is retried with backoff and then given up (counted in
  `deploy_manager_notify_failures_total{target}`, logged without any secret); a run never waits or fails for it.
- What is said is decided by pure functions (`describe.summarize`, `describe.describe`, `describe.payload`) over
  the run record; the clients (`github.GitHubStatuses`, `webhook.WebhookNotifier`) only send what they are given.
- Check results (smoke checks) are read through `checks.checks_of(run)`, the one seam to the run record's list of
  check results: absent or empty, every run is described by its steps alone.
"""

from __future__ import annotations

from deploy_manager.notify.sender import RunNotifier, Sender, build_notifier

__all__ = ["RunNotifier", "Sender", "build_notifier"]
