"""What the routers share: the app context, auth dependencies, and strict body parsing.

Contract:
- `Ctx` (an `Annotated` dependency) gives a route the `AppContext` built by `create_app`.
- `ReadAuth` / `WriteAuth`: 401 (with `WWW-Authenticate: Bearer`) without a known token, 403 for a read token
  on a write endpoint; a write token can read. An endpoint whose tokens are not configured is disabled: 503
  naming the setting (write: DM_WRITE_TOKENS unset; read: neither DM_READ_TOKENS nor DM_WRITE_TOKENS set).
- `read_body(request, limit)` reads at most `limit` bytes (413 beyond); `parse_json(...)` gives 415 for a
  non-JSON content type, 400 for malformed JSON, 422 for a body that does not fit the model. Every error is a
  JSON body `{"detail": ...}` and never echoes the input back.
- `resolve_revision(ctx, rev)`: fetch + resolve in the mirror before a trigger is queued: 422 naming an unknown
  revision (a revision is the caller's own input, not a secret), 503 when git is unreachable.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import threading
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ValidationError

from deploy_manager.api.auth import Role, TokenAuth, bearer_token
from deploy_manager.api.cache import ReleasesCache
from deploy_manager.config import Settings
from deploy_manager.metrics import ServiceMetrics
from deploy_manager.models.errors import UnknownRevision
from deploy_manager.redaction import Redactor
from deploy_manager.service import PipelineLike, RunQueue, StoreLike

M = TypeVar("M", bound=BaseModel)
__all__ = ["AppContext", "Ctx", "ReadAuth", "Redactor", "WriteAuth"]  # Redactor: masks text the API passes on


class RecentDeliveries:
    """A bounded record of the webhook delivery ids seen lately (GitHub's `X-GitHub-Delivery`), so a captured
    delivery sent again is answered `duplicate` and starts nothing. A delivery is claimed while it is handled
    and released if it was refused (4xx/5xx), so GitHub's own redelivery of a failed attempt still works."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._ids: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._lock = threading.Lock()

    def claim(self, delivery: str) -> bool:
        """True the first time `delivery` is seen (then recorded); False for a replay."""
        with self._lock:
            if delivery in self._ids:
                self._ids.move_to_end(delivery)
                return False
            self._ids[delivery] = None
            while len(self._ids) > self.size:
                self._ids.popitem(last=False)
            return True

    def release(self, delivery: str) -> None:
        with self._lock:
            self._ids.pop(delivery, None)


@dataclasses.dataclass
class AppContext:
    settings: Settings
    queue: RunQueue
    store: StoreLike
    pipeline: PipelineLike
    metrics: ServiceMetrics
    auth: TokenAuth
    kube_ping: Any = None  # () -> None, raises when the Kubernetes API is unreachable (readiness)
    releases_cache: ReleasesCache = dataclasses.field(default_factory=ReleasesCache)
    redact: Redactor = dataclasses.field(default_factory=lambda: Redactor([]))
    deliveries: RecentDeliveries = dataclasses.field(default_factory=RecentDeliveries)


async def get_ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.dm
    return ctx


Ctx = Annotated[AppContext, Depends(get_ctx)]


def endpoint_name(request: Request) -> str:
    """`GET /runs/{run_id}`: the route's template, never the caller's path (no input echoed back)."""
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path', request.url.path)}"


def require_configured(request: Request, ctx: AppContext) -> None:
    """No API token at all: the read API is disabled (503 saying so), never open."""
    if not ctx.auth.configured:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"{endpoint_name(request)} is disabled: neither DM_READ_TOKENS nor DM_WRITE_TOKENS is set",
        )


def _role(request: Request, ctx: AppContext) -> Role:
    token = bearer_token(request.headers.get("authorization"))
    role = ctx.auth.role(token) if token else None
    if role is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or unknown bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return role


async def require_read(request: Request, ctx: Ctx) -> Role:
    require_configured(request, ctx)
    return _role(request, ctx)


async def require_write(request: Request, ctx: Ctx) -> Role:
    if not ctx.auth.writable:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"{endpoint_name(request)} is disabled: DM_WRITE_TOKENS is not set",
        )
    role = _role(request, ctx)
    if role < Role.write:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="this endpoint needs a write token")
    return role


ReadAuth = Annotated[Role, Depends(require_read)]
WriteAuth = Annotated[Role, Depends(require_write)]


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, detail=f"request body over {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes whatever Content-Length claimed."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def is_json_type(mt: str) -> bool:
    """JSON media types; a body sent without any Content-Type is read as JSON too (curl -d, bare clients)."""
    return mt in ("", "application/json") or (mt.startswith("application/") and mt.endswith("+json"))


MAX_JSON_DEPTH = 32  # a GitHub push is 4 levels deep; ours are flat


def decode_json(body: bytes) -> Any:
    """The parsed body, or 400 with a one-line reason: bad UTF-8 or JSON, nesting past MAX_JSON_DEPTH (the
    decoder recurses per level), a number past Python's digit limit."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=f"malformed JSON body: {exc}") from exc
    except RecursionError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="malformed JSON body: nested too deeply") from exc
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        reason = str(exc).splitlines()[0][:120]
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=f"malformed JSON body: {reason}") from exc
    if json_depth(data) > MAX_JSON_DEPTH:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail=f"malformed JSON body: nested deeper than {MAX_JSON_DEPTH} levels"
        )
    return data


def json_depth(data: Any) -> int:
    """Nesting depth of parsed JSON (iterative: the point is to refuse what recursion cannot handle)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            if depth > MAX_JSON_DEPTH:
                return depth
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=errors) from exc


async def resolve_revision(ctx: AppContext, rev: str) -> str:
    """The commit `rev` names in the freshly fetched mirror: 422 naming it if unknown, 503 if git is unreachable.
    Checked before a trigger is queued, so a bad revision never becomes a run."""
    try:
        return await run_in_threadpool(ctx.queue.resolve_revision, rev)
    except UnknownRevision as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=ctx.redact(str(exc))) from exc
    except Exception as exc:  # the remote is unreachable and the mirror does not have it (yet)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail=ctx.redact(f"cannot resolve revision {rev!r}: {exc}")
        ) from exc


async def parse_json(request: Request, model: type[M], limit: int) -> M | None:
    """An optional JSON body: None when empty; see the module docstring for the errors."""
    body = await read_body(request, limit)
    if not body.strip():
        return None
    if not is_json_type(media_type(request)):
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, detail="the body must be application/json")
    return validate(model, decode_json(body))
