"""Public API models (pydantic): what the service answers, so /openapi.json describes the real responses.

These are the service's own public shapes, separate from the internal dataclasses of `deploy_manager.models`;
`api/convert.py` maps one to the other. Field names are fixed interfaces (issue 5): add, never rename.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

RunStatus = Literal[
    "queued", "running", "succeeded", "failed", "interrupted", "superseded", "handed_over", "degraded"
]
REVISION_PATTERN = r"^[A-Za-z0-9._/@^~{}][A-Za-z0-9._/@^~{}+-]{0,254}$"


class ErrorBody(BaseModel):
    detail: Any = Field(description="What was wrong with the request (a message or a list of field errors).")


class TriggerResponse(BaseModel):
    run_id: int | None = Field(description="The run that will deploy this trigger (null: ignored).")
    status: Literal["queued", "coalesced", "ignored"]
    reason: str = Field("", description="Why the trigger was coalesced or ignored.")


class DuplicateDelivery(BaseModel):
    """A webhook delivery id seen before: answered 200, no run."""

    run_id: None = None
    status: Literal["duplicate"] = "duplicate"
    reason: str = ""


class PingResponse(BaseModel):
    status: Literal["pong"] = "pong"
    hook_id: int | None = None


class RunRequest(BaseModel):
    """`POST /runs` body (optional): a revision to deploy instead of the branch head."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    # `rev`, `ref` and `commit` are accepted too: callers spell it like `?rev=`, a push payload or Jenkins.
    revision: str | None = Field(
        None,
        pattern=REVISION_PATTERN,
        validation_alias=AliasChoices("revision", "rev", "ref", "commit"),
        description="Branch, tag or commit (also accepted as `rev`, `ref` or `commit`); default: the branch.",
    )


class JenkinsHook(BaseModel):
    """`POST /hooks/jenkins` body (optional): which ref moved and to which commit."""

    model_config = ConfigDict(extra="ignore")
    ref: str | None = Field(None, max_length=255, description="`refs/heads/<branch>` or a branch name.")
    commit: str | None = Field(None, pattern=r"^[0-9a-fA-F]{7,40}$", description="The new head commit.")


class DriftOut(BaseModel):
    """One live object that differs from the release's manifest (fields the manifest sets)."""

    kind: str
    namespace: str
    name: str
    paths: list[str] = Field(description="Fields that differ, e.g. spec.replicas; `<missing>`: the object is gone.")
    missing: bool = False


class ReleaseOut(BaseModel):
    component: str
    release: str
    namespace: str
    chart: str | None = None
    chart_version: str | None = None
    revision: int | None = Field(None, description="Helm release revision.")
    status: str | None = Field(None, description="Helm status: deployed, failed, pending-upgrade, ...")
    commit: str | None = Field(
        None,
        description="Values-repo commit the release is at: the observed commit when it is in sync (even if that"
        " push did not touch it), else the commit helm last deployed.",
    )
    digest: str | None = None
    deployed_at: dt.datetime | None = Field(None, description="When helm last wrote the release.")
    last_run_id: int | None = None
    healthy: bool | None = Field(
        None, description="Helm status deployed, not drifted/failed/locked, and the component's latest checks passed."
    )
    state: str | None = Field(None, description="The plan's verdict: in-sync, out-of-sync, drifted, ...")
    deployed_commit: str | None = Field(None, description="The commit recorded on the release when helm last wrote it.")
    checks: dict[str, str] | None = Field(
        None, description="Latest result of each workflow check of the component (passed|failed|slow|error)."
    )
    drifted: bool = Field(default=False, description="The last drift check found live objects differing.")
    drift: list[DriftOut] = Field(default=[], description="What the last drift check found, object by object.")


class RunOut(BaseModel):
    id: int
    cluster: str | None = None
    trigger: str
    commit: str | None = None
    status: RunStatus
    created_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    error: str | None = None


class ReasonOut(BaseModel):
    code: str = Field(description="Machine-readable: values_changed, chart_version_changed, absent, locked ...")
    message: str
    paths: list[str] = Field([], description="Value paths that changed, when known.")


# Step and action fields follow the CLI's JSON (`history -o json`, `plan -o json`), so tools read both alike.
class StepOut(BaseModel):
    component: str
    release: str
    namespace: str
    action: str = Field(description="What the step did: install, upgrade, unlock, rollback, uninstall, none, blocked")
    status: str = Field(description="succeeded | failed | blocked | skipped")
    reasons: list[str] = Field([], description="Why, in words: `values changed: conf.keystone.token.expiration`.")
    reason_details: list[ReasonOut] = Field([], description="The same reasons with their code and value paths.")
    helm_revision: int | None = None
    duration: float = Field(0.0, description="Seconds.")
    exit_code: int | None = None
    output_tail: str | None = Field(None, description="Last lines of helm/bootstrap output (secrets redacted).")
    error: str | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None


class RunDetailOut(RunOut):
    steps: list[StepOut] = []


class ObjectDiffOut(BaseModel):
    """One object of `GET /plan?diff=true`: the deployed manifest against the new render (secrets masked)."""

    kind: str
    namespace: str
    name: str
    change: Literal["added", "removed", "changed"]
    diff: str = Field(description="Unified diff of the object's YAML; Secret data shows `***` or `<changed>`.")


class PlanDiffObjectOut(ObjectDiffOut):
    component: str


class ActionOut(BaseModel):
    component: str
    release: str
    namespace: str
    action: str = Field(description="install | upgrade | unlock | none | blocked")
    reasons: list[str] = Field([], description="Why, in words: `values changed: conf.keystone.token.expiration`.")
    reason_details: list[ReasonOut] = Field([], description="The same reasons with their code and value paths.")
    state: str = Field(description="absent | in-sync | out-of-sync | drifted | failed | locked")
    needs: list[str] = []
    wave: int = 0
    digest: str = ""
    revision: int | None = Field(None, description="The deployed helm revision the plan saw.")
    diff: list[ObjectDiffOut] | None = Field(default=None, description="With `?diff=true`, for a component written.")
    values_paths: list[str] | None = Field(default=None, description="With `?diff=true`: the values paths that change.")


class PlanOut(BaseModel):
    cluster: str
    rev: str
    commit: str | None = None
    actions: list[ActionOut]
    waves: list[list[str]] = Field([], description="Components grouped in the order they are applied.")
    diff: list[PlanDiffObjectOut] | None = Field(default=None, description="With `?diff=true`: each changed object.")


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyOut(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, str] = Field(description="Each dependency: `ok` or why it is not.")
