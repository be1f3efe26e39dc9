"""What a run's commit status and notification say: pure functions of the run record (no I/O), table-tested.

- `commit_state(status)`: the GitHub state of a run status: queued/running -> `pending`, succeeded ->
  `success`, failed and degraded (a check failed after the rollout) -> `failure`, interrupted and superseded
  (the commit was not fully tried) -> `error`.
- `describe(run)`: one line of at most 140 characters (GitHub's limit): what failed ("keystone upgrade failed
  (rolled back); check token-issue failed; glance, nova blocked") or what was done ("3 components upgraded,
  6 checks passed").
- `payload(run, link)`: the JSON body of the run-end notification, with a Slack-compatible `text`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from deploy_manager.models.run import RunRecord, StepRecord
from deploy_manager.notify.checks import CheckView, checks_of
from deploy_manager.redaction import cut

CommitState = Literal["pending", "success", "failure", "error"]
COMMIT_STATES: tuple[CommitState, ...] = ("pending", "success", "failure", "error")
DESCRIPTION_LIMIT = 140  # GitHub refuses a longer description (422)
_STATES: dict[str, CommitState] = {
    "queued": "pending",
    "running": "pending",
    "succeeded": "success",
    "failed": "failure",
    "degraded": "failure",
    "interrupted": "error",
    "superseded": "error",
}
WRITES = {"install": "installed", "upgrade": "upgraded"}
REMEDIATIONS = {"rollback": "rolled back", "uninstall": "uninstalled"}


def status_value(status: Any) -> str:
    return str(getattr(status, "value", status))


def commit_state(status: Any) -> CommitState:
    """GitHub's state for a run status (an unknown one is an `error`: never claim success by accident)."""
    return _STATES.get(status_value(status), "error")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


@dataclass(frozen=True)
class RunSummary:
    """The facts every notification is made of."""

    run_id: int
    cluster: str
    commit: str | None
    trigger: str
    status: str
    state: CommitState
    description: str
    written: dict[str, list[str]] = field(default_factory=dict)  # "installed"/"upgraded" -> components
    failed_components: list[str] = field(default_factory=list)
    blocked_components: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    passed_checks: list[str] = field(default_factory=list)


def _step_name(step: StepRecord) -> str:
    kind, _, name = step.action.partition(":")
    return f"{kind} {name}" if name else kind


def _failures(steps: tuple[StepRecord, ...]) -> tuple[list[str], list[str], list[str]]:
    """(failed components, their one-line failures, blocked components), in the run's order."""
    failed: list[str] = []
    lines: dict[str, str] = {}
    blocked: list[str] = []
    remedied: dict[str, str] = {}
    for step in steps:
        status = status_value(step.status)
        if status == "blocked" and step.component not in blocked:
            blocked.append(step.component)
        # A remediation stands for its component: it names what became of the failed write.
        if step.action in REMEDIATIONS and (status == "failed" or step.component in lines):
            remedied.setdefault(step.component, REMEDIATIONS[step.action])
        if status != "failed":
            continue
        if step.component not in failed:
            failed.append(step.component)
        if step.component not in lines or lines[step.component].startswith(tuple(REMEDIATIONS)):
            lines[step.component] = _step_name(step)
    out = []
    for name in failed:
        line = f"{name} {lines[name]} failed"
        how = remedied.get(name)
        if how and not lines[name].startswith(tuple(REMEDIATIONS)):
            line += f" ({how})"
        out.append(line)
    return failed, out, [b for b in blocked if b not in failed]


def _check_failure(check: CheckView) -> str:
    if check.status == "slow" and check.duration is not None and check.sla is not None:
        return f"check {check.name} slow ({check.duration:.1f} s > SLA {check.sla:g} s)"
    word = {"slow": "slow", "error": "errored"}.get(check.status, "failed")
    return f"check {check.name} {word}"


def _written(steps: tuple[StepRecord, ...]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for step in steps:
        verb = WRITES.get(step.action)
        if verb and status_value(step.status) == "succeeded":
            names = out.setdefault(verb, [])
            if step.component not in names:
                names.append(step.component)
    return out


def _done(written: dict[str, list[str]], passed: int) -> str:
    parts = []
    upgraded, installed = written.get("upgraded", []), written.get("installed", [])
    if upgraded:
        parts.append(f"{_plural(len(upgraded), 'component')} upgraded")
    if installed:
        parts.append(f"{len(installed)} installed" if upgraded else f"{_plural(len(installed), 'component')} installed")
    if passed:
        parts.append(f"{_plural(passed, 'check')} passed")
    if not parts:
        return "nothing to change: every component in sync"
    if not upgraded and not installed:
        parts.insert(0, "no component changed")
    return ", ".join(parts)


def summarize(run: RunRecord) -> RunSummary:
    status = status_value(run.status)
    state = commit_state(status)
    checks = checks_of(run)
    failed_checks = [c for c in checks if c.failed]
    passed = [c.name for c in checks if c.status == "passed"]
    failed, failure_lines, blocked = _failures(run.steps)
    written = _written(run.steps)
    problems = failure_lines + [_check_failure(c) for c in failed_checks]
    if blocked:
        problems.append(f"{', '.join(blocked)} blocked")
    error = _first_line(run.error)
    if state == "pending":
        text = f"deploying to {run.cluster}"
    elif state == "success":
        text = _done(written, len(passed))
    elif status == "degraded":
        text = "; ".join(problems) or error or "a check failed"
        done = _done(written, len(passed))
        text = f"degraded: {text}" + ("" if done.startswith("nothing") else f"; {done}")
    elif state == "failure":
        text = "; ".join(problems) or error or "the run failed"
    else:  # interrupted, superseded
        if not error:
            text = f"{status} before it finished"
        else:  # "superseded by commit …", "interrupted: the process running it stopped" say it themselves
            text = error if error.lower().startswith(status) else f"{status}: {error}"
    return RunSummary(
        run_id=run.id,
        cluster=run.cluster,
        commit=run.commit,
        trigger=run.trigger,
        status=status,
        state=state,
        description=cut(text, DESCRIPTION_LIMIT),
        written=written,
        failed_components=failed,
        blocked_components=blocked,
        failed_checks=[c.name for c in failed_checks],
        passed_checks=passed,
    )


def describe(run: RunRecord) -> str:
    """The one-line commit status description (≤ 140 characters)."""
    return summarize(run).description


def payload(run: RunRecord, link: str | None) -> dict[str, Any]:
    """The run-end notification: the facts as fields, and a Slack-compatible `text`."""
    s = summarize(run)
    commit = (s.commit or "")[:12] or "no commit"
    where = f" <{link}|run {s.run_id}>" if link else ""
    text = f"deploy-manager {s.cluster}: run {s.run_id} {s.status} at {commit}: {s.description}{where}"
    return {
        "text": text,
        "status": s.status,
        "state": s.state,
        "cluster": s.cluster,
        "commit": s.commit,
        "run_id": s.run_id,
        "trigger": s.trigger,
        "description": s.description,
        "failed_components": s.failed_components,
        "blocked_components": s.blocked_components,
        "failed_checks": s.failed_checks,
        "link": link,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }
