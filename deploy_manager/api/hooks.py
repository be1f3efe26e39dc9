"""`POST /hooks/github` and `POST /hooks/jenkins`: verify, then enqueue; never run anything in the request.

Contract (issue 5):
- GitHub: the signature (`X-Hub-Signature-256`, HMAC-SHA256 of the raw body) is checked before anything else
  is looked at: bad or missing -> 401 and nothing happens. `ping` -> 200. `push` to `DM_BRANCH` -> 202 with
  the run id (`queued`/`coalesced`); a push to another branch, a tag, or a deleted ref -> 202 `ignored`, no
  run. Other events -> 400. Bodies: `application/json`, or GitHub's form encoding (`payload=<json>`).
  The pushed commit is resolved after a fetch: one the repository does not have -> 422 and no run (as Jenkins).
  A delivery id (`X-GitHub-Delivery`) seen before -> 200 `duplicate`, no run (a bounded record of recent ids).
- Both hooks: a commit that is an ancestor of the deployed commit (the branch not rewound since) -> 202
  `ignored`, no run: a replayed old push must not start a run, and cannot roll the cluster back.
- Any malformed body (bad JSON, nested too deeply, …) -> 400 with a one-line reason.
- Jenkins: `Authorization: Bearer <DM_JENKINS_TOKEN>`; optional JSON `{"ref": ..., "commit": ...}` (also under
  `application/x-www-form-urlencoded` when the body is a JSON object, as `curl -d` sends it): a ref of
  another branch or a tag is ignored; otherwise the branch head is deployed (commit: for coalescing). A commit
  the repository does not have (after a fetch) -> 422 and no run.
- Not configured (no secret / token): 503 with a body naming the setting; never accepts unauthenticated.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from deploy_manager.api.auth import SingleToken, bearer_token, verify_github_signature
from deploy_manager.api.deps import (
    AppContext,
    Ctx,
    decode_json,
    is_json_type,
    media_type,
    read_body,
    resolve_revision,
    validate,
)
from deploy_manager.api.schemas import DuplicateDelivery, ErrorBody, JenkinsHook, PingResponse, TriggerResponse
from deploy_manager.service import TriggerResult

log = logging.getLogger(__name__)
router = APIRouter(prefix="/hooks", tags=["hooks"])

ZERO_SHA = "0" * 40
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (400, 401, 413, 415, 422, 503)}
DELIVERY_CHARS = 64


def _answer(ctx: AppContext, hook: str, result: TriggerResult) -> JSONResponse:
    ctx.metrics.webhooks.labels(hook, result.status).inc()
    body = TriggerResponse(run_id=result.run_id, status=result.status, reason=result.reason)
    return JSONResponse(body.model_dump(), status_code=status.HTTP_202_ACCEPTED)


# Outcome label of a rejected webhook, by status code (a small fixed set: no free text in labels).
OUTCOMES = {
    400: "bad_request",
    401: "unauthorized",
    413: "too_large",
    415: "bad_content_type",
    422: "invalid",
    503: "disabled",
}


def _reject(ctx: AppContext, hook: str, outcome: str, code: int, detail: str, **headers: str) -> HTTPException:
    log.warning("%s webhook rejected: %s", hook, detail, extra={"outcome": outcome})
    return HTTPException(code, detail=detail, headers=headers or None)


async def _counted(ctx: AppContext, hook: str, handler: Callable[[], Awaitable[JSONResponse]]) -> JSONResponse:
    """Run a hook handler, counting every rejection by outcome (successes are counted by _answer)."""
    try:
        return await handler()
    except HTTPException as exc:
        ctx.metrics.webhooks.labels(hook, OUTCOMES.get(exc.status_code, "rejected")).inc()
        raise


def _branch_of(ref: str) -> str | None:
    """`refs/heads/x` -> `x`; a tag or any other ref -> None."""
    return ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None


def _github_payload(ctx: AppContext, body: bytes, mt: str) -> dict[str, Any]:
    if is_json_type(mt):
        data = decode_json(body)
    elif mt == "application/x-www-form-urlencoded":
        fields = parse_qs(body.decode("utf-8", errors="replace"))
        if "payload" not in fields:
            raise _reject(ctx, "github", "bad_request", 400, "form body without a 'payload' field")
        data = decode_json(fields["payload"][0].encode("utf-8"))
    else:
        raise _reject(ctx, "github", "bad_request", 415, "the body must be application/json")
    if not isinstance(data, dict):
        raise _reject(ctx, "github", "bad_request", 400, "the payload must be a JSON object")
    return data


@router.post(
    "/github",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TriggerResponse,
    responses={
        200: {"model": PingResponse, "description": "ping answered (a replayed delivery: `duplicate`, no run)"},
        **ERRORS,
    },
    summary="GitHub / GitHub Enterprise push webhook",
)
async def github(request: Request, ctx: Ctx) -> JSONResponse:
    return await _counted(ctx, "github", lambda: _github(request, ctx))


async def _github(request: Request, ctx: AppContext) -> JSONResponse:
    secret = ctx.settings.github_webhook_secret
    if secret is None:
        raise _reject(ctx, "github", "disabled", 503, "GitHub webhook disabled: DM_GITHUB_WEBHOOK_SECRET is not set")
    body = await read_body(request, ctx.settings.max_body_bytes)
    if not verify_github_signature(secret.get_secret_value(), body, request.headers.get("x-hub-signature-256")):
        raise _reject(ctx, "github", "unauthorized", 401, "missing or invalid X-Hub-Signature-256")
    event = request.headers.get("x-github-event", "")
    if event == "ping":
        data = _github_payload(ctx, body, media_type(request))
        ctx.metrics.webhooks.labels("github", "ping").inc()
        hook_id = data.get("hook_id")
        return JSONResponse(PingResponse(hook_id=hook_id if isinstance(hook_id, int) else None).model_dump())
    if event != "push":
        raise _reject(ctx, "github", "unsupported_event", 400, f"unsupported event {event[:64]!r}: only push and ping")
    data = _github_payload(ctx, body, media_type(request))
    ref, after = data.get("ref"), data.get("after")
    if not isinstance(ref, str) or not isinstance(after, str):
        raise _reject(ctx, "github", "bad_request", 400, "push payload needs string fields 'ref' and 'after'")
    branch = _branch_of(ref)
    if data.get("deleted") is True or after == ZERO_SHA:
        return _answer(ctx, "github", TriggerResult(None, "ignored", f"{ref} was deleted"))
    if branch != ctx.settings.branch:
        return _answer(ctx, "github", TriggerResult(None, "ignored", f"{ref} is not refs/heads/{ctx.settings.branch}"))
    commit = after.lower()
    if len(commit) != 40 or any(c not in "0123456789abcdef" for c in commit):
        raise _reject(ctx, "github", "bad_request", 400, "push payload 'after' is not a commit sha")
    delivery = request.headers.get("x-github-delivery", "").strip()[:DELIVERY_CHARS]
    if delivery and not ctx.deliveries.claim(delivery):
        log.warning("github delivery %s replayed: ignored", delivery, extra={"commit": commit})
        ctx.metrics.webhooks.labels("github", "duplicate").inc()
        dup = DuplicateDelivery(reason=f"delivery {delivery} was already received")
        return JSONResponse(dup.model_dump(), status_code=status.HTTP_200_OK)
    try:
        # Resolved after a fetch: a commit the repository does not have is refused now (422), not by a failing run.
        commit = await resolve_revision(ctx, commit)
        log.info("github push", extra={"commit": commit, "delivery": delivery})
        old = await _superseded(ctx, commit)
        if old is not None:
            return _answer(ctx, "github", TriggerResult(None, "ignored", old))
        return _answer(ctx, "github", ctx.queue.trigger("github", commit=commit))
    except BaseException:
        if delivery:
            ctx.deliveries.release(delivery)  # refused: a redelivery of it may succeed
        raise


async def _superseded(ctx: AppContext, commit: str) -> str | None:
    """Why a trigger for `commit` is a no-op, if it is: `commit` is an ancestor of the deployed commit and the
    branch still contains the deployed one (a branch rewound to an older commit is deployed as usual)."""
    queue = ctx.queue
    deployed = queue.deployed_commit
    is_ancestor = getattr(queue.source, "is_ancestor", None)
    if deployed is None or deployed == commit or is_ancestor is None:
        return None  # the same commit: the queue itself answers `coalesced` (already deployed)

    def check() -> bool:
        with queue.git_lock:
            if not is_ancestor(commit, deployed):
                return False
        head = queue.fetch_head()  # the branch as the remote has it now (the commit itself may not need a fetch)
        with queue.git_lock:
            return bool(is_ancestor(deployed, head))

    try:
        if not await run_in_threadpool(check):
            return None
    except Exception as exc:  # cannot tell: let the run decide (a run with nothing to do changes nothing)
        log.warning("ancestry check of %s failed: %s", commit[:12], ctx.redact(str(exc)))
        return None
    return f"{commit[:12]} is an ancestor of the deployed commit {deployed[:12]}"


def _jenkins_payload(ctx: AppContext, body: bytes, mt: str) -> Any:
    if is_json_type(mt):
        return decode_json(body)
    if mt == "application/x-www-form-urlencoded":
        # `curl -d '{"ref": ...}'` and Jenkins' HTTP request plugin send JSON under the form content type.
        stripped = body.lstrip()
        if stripped.startswith((b"{", b"[")):
            data = decode_json(body)  # a malformed JSON object is a 400 with its reason, like application/json
            if isinstance(data, dict):
                return data
    raise _reject(ctx, "jenkins", "bad_request", 415, "the body must be application/json (or a JSON object)")


@router.post(
    "/jenkins",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TriggerResponse,
    responses=ERRORS,
    summary="Jenkins (or any CI) trigger",
    openapi_extra={
        "requestBody": {"required": False, "content": {"application/json": {"schema": JenkinsHook.model_json_schema()}}}
    },
)
async def jenkins(request: Request, ctx: Ctx) -> JSONResponse:
    return await _counted(ctx, "jenkins", lambda: _jenkins(request, ctx))


async def _jenkins(request: Request, ctx: AppContext) -> JSONResponse:
    configured = ctx.settings.jenkins_token
    if configured is None:
        raise _reject(ctx, "jenkins", "disabled", 503, "Jenkins hook disabled: DM_JENKINS_TOKEN is not set")
    token = bearer_token(request.headers.get("authorization"))
    if token is None or not SingleToken(configured).matches(token):
        raise _reject(
            ctx, "jenkins", "unauthorized", 401, "missing or invalid bearer token", **{"WWW-Authenticate": "Bearer"}
        )
    body = await read_body(request, ctx.settings.max_body_bytes)
    hook = JenkinsHook(ref=None, commit=None)
    if body.strip():
        hook = validate(JenkinsHook, _jenkins_payload(ctx, body, media_type(request)))
    if hook.ref is not None:
        branch = hook.ref.removeprefix("refs/heads/")
        if hook.ref.startswith("refs/") and not hook.ref.startswith("refs/heads/") or branch != ctx.settings.branch:
            return _answer(ctx, "jenkins", TriggerResult(None, "ignored", f"{hook.ref} is not {ctx.settings.branch}"))
    # A commit that is not in the repository is refused now (422, no run), not discovered by a failing run.
    commit = await resolve_revision(ctx, hook.commit.lower()) if hook.commit else None
    if commit is not None:
        old = await _superseded(ctx, commit)
        if old is not None:
            return _answer(ctx, "jenkins", TriggerResult(None, "ignored", old))
    return _answer(ctx, "jenkins", ctx.queue.trigger("jenkins", commit=commit))
