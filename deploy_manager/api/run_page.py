"""The HTML page of one run, for people: `GET /ui/runs/{id}`, and `GET /runs/{id}` when the browser asks for HTML.

Contract:
- `GET /runs/{id}` keeps its JSON answer and its Bearer-only auth for every client that does not prefer HTML;
  a request whose `Accept` ranks `text/html` above `application/json` (what a browser sends) is routed to
  `/ui/runs/{id}` by `HtmlRunNegotiation` (both answers carry `Vary: Accept`).
- Auth as the status page `/`: a read token as Bearer, or as the HTTP Basic password (401 asks for Basic).
- The page shows the run's facts, its steps (a failed step highlighted, the first one anchored `#failed-step`,
  helm output and errors on click), its check results when the record carries any (`notify.checks`), and,
  while the run is running, what each component is doing now (`RunQueue.progress()`: the helm write or the
  bootstrap phase in progress), refreshing itself every 2 s until the run ends.
- Every value is HTML-escaped and masked (`ctx.redact`); the page runs no script and loads nothing: its CSP
  allows only its own inline style, by hash. `<details>` gives "log tail on click" without JavaScript.
"""

from __future__ import annotations

import base64
import hashlib
import re
from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, status
from fastapi.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deploy_manager.api.auth import basic_password, bearer_token
from deploy_manager.api.deps import AppContext, Ctx, require_configured
from deploy_manager.models.run import RunRecord, StepRecord
from deploy_manager.notify.checks import CheckView, checks_of
from deploy_manager.notify.describe import describe, status_value

router = APIRouter(tags=["status"])
MAX_ID = 2**63 - 1
REFRESH_SECONDS = 2
UI_PREFIX = "/ui"
STYLE = """body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin-bottom:2em}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}th{background:#eee}
tr.failed td{background:#fdd}tr.failed td:first-child{border-left:4px solid #c00}tr.blocked td{background:#ffe9c0}
tr.running td{background:#e3f0ff}.status-failed,.status-degraded{color:#a00;font-weight:bold}
.status-succeeded{color:#060;font-weight:bold}.status-running{color:#035;font-weight:bold}
pre{white-space:pre-wrap;max-width:60em;margin:.3em 0;font-size:.85em}summary{cursor:pointer;color:#035}"""


def page_headers(style: str) -> dict[str, str]:
    """The HTML pages' headers: no script and nothing loaded, only the page's own inline `style` (by hash)."""
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'sha256-{digest}'; frame-ancestors 'none'; base-uri 'none';"
            " form-action 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


HEADERS = {**page_headers(STYLE), "Vary": "Accept"}  # /runs/{id} answers HTML or JSON by `Accept`
_RUN_PATH = re.compile(r"^/runs/(\d+)$")


class Html(str):
    """Markup that is already safe (built here from escaped parts): table cells print it as is."""

    __slots__ = ()


def run_link(run_id: int, text: str | None = None) -> Html:
    return Html(f'<a href="/runs/{run_id}">{escape(text or str(run_id))}</a>')


# -- content negotiation ------------------------------------------------------------------------------------
def _quality(accept: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        if media:
            out[media] = max(q, out.get(media, 0.0))
    return out


def prefers_html(accept: str | None) -> bool:
    """True when `Accept` ranks HTML above JSON (a browser); `*/*`, JSON or no header keep the JSON API."""
    if not accept:
        return False
    q = _quality(accept)
    html = max(q.get("text/html", 0.0), q.get("application/xhtml+xml", 0.0))
    return html > q.get("application/json", 0.0)


class HtmlRunNegotiation:
    """Routes a browser's `GET /runs/{id}` to the HTML page; every other request passes unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD") or not _RUN_PATH.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        accept = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"accept"), None)
        if prefers_html(accept):
            path = UI_PREFIX + scope["path"]
            scope = {**scope, "path": path, "raw_path": path.encode()}

        async def vary(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"vary" for k, _ in headers):
                    headers.append((b"vary", b"Accept"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, vary)


# -- rendering ----------------------------------------------------------------------------------------------
def cell(value: Any, cls: str = "") -> str:
    attr = f' class="{escape(cls)}"' if cls else ""
    if isinstance(value, Html):
        return f"<td{attr}>{value}</td>"
    if value is None or value == "":
        return f"<td{attr}>–</td>"
    return f"<td{attr}>{escape(str(value))}</td>"


def _details(label: str, text: str) -> Html:
    if not text:
        return Html("")
    return Html(f"<details><summary>{escape(label)}</summary><pre>{escape(text)}</pre></details>")


def _duration(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.1f} s"


def _step_row(step: StepRecord, ctx: AppContext, anchor: bool) -> str:
    st = status_value(step.status)
    cls = {"failed": "failed", "blocked": "blocked"}.get(st, "")
    reasons = "; ".join(ctx.redact(r.message) or "" for r in step.reasons)
    more = _details("output", ctx.redact(step.output_tail) or "")
    error = ctx.redact(step.error) or ""
    detail = Html(escape(error.splitlines()[0] if error else "") + (more if more else ""))
    if error and "\n" in error:
        detail = Html(detail + _details("error", error))
    row_id = ' id="failed-step"' if anchor else ""
    attr = f' class="{cls}"' if cls else ""
    cells = [
        cell(step.component),
        cell(step.action),
        cell(st, f"status-{st}"),
        cell(_duration(step.duration)),
        cell(step.helm_revision),
        cell(reasons),
        cell(detail),
    ]
    return f"<tr{attr}{row_id}>{''.join(cells)}</tr>"


def _check_row(check: CheckView, ctx: AppContext) -> str:
    attr = ' class="failed"' if check.failed else ""
    sla = "" if check.sla is None else f"{check.sla:g} s"
    cells = [
        cell(check.name),
        cell(check.component),
        cell(check.status, f"status-{'failed' if check.failed else 'succeeded'}"),
        cell(_duration(check.duration)),
        cell(sla),
        cell(check.finished_at),
        cell(_details("log", ctx.redact(check.log_tail) or "")),
    ]
    return f"<tr{attr}>{''.join(cells)}</tr>"


def _table(headers: list[str], rows: list[str], table_id: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def progress_html(activities: dict[str, str]) -> str:
    """What the running run is doing now, as a table (component, doing)."""
    if not activities:
        return "<p>Between steps: waiting for the next component.</p>"
    rows = [
        f'<tr class="running">{cell(component)}{cell(what)}</tr>' for component, what in sorted(activities.items())
    ]
    return _table(["component", "now"], rows, "progress")


def latest_checks_html(runs: list[RunRecord], ctx: AppContext) -> str:
    """For the status page: the check results of the newest finished run that has any ("" when none does)."""
    for listed in runs:
        if status_value(listed.status) in ("queued", "running"):
            continue
        run = ctx.store.get_run(listed.id)  # the full record: list_runs need not carry the checks
        checks = checks_of(run) if run is not None else []
        if checks:
            rows = [_check_row(c, ctx) for c in checks]
            headers = ["check", "component", "status", "duration", "SLA", "finished", "log tail"]
            return f"<h2>Checks (run {run_link(listed.id)})</h2>\n{_table(headers, rows, 'checks')}\n"
        return ""  # only the newest finished run counts: older results may be stale
    return ""


def render_run(run: RunRecord, ctx: AppContext) -> str:
    st = status_value(run.status)
    live = st in ("queued", "running")
    refresh = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if live else ""
    facts = [
        ("cluster", run.cluster),
        ("commit", run.commit or ""),
        ("trigger", run.trigger),
        ("status", Html(f'<span class="status-{escape(st)}" id="run-status">{escape(st)}</span>')),
        ("summary", ctx.redact(describe(run)) or ""),
        ("created", run.created_at),
        ("started", run.started_at or ""),
        ("finished", run.finished_at or ""),
        ("error", ctx.redact(run.error) or ""),
    ]
    fact_rows = [f"<tr><th>{escape(k)}</th>{cell(v)}</tr>" for k, v in facts]
    parts = [f'<table id="facts"><tbody>{"".join(fact_rows)}</tbody></table>']
    if st == "running" and ctx.queue.running_run_id == run.id:
        parts.append(f'<h2 id="in-progress">In progress</h2>\n{progress_html(ctx.queue.progress())}')
    elif st == "queued":
        parts.append('<h2 id="in-progress">Queued</h2><p>Waiting for the running run to end.</p>')
    first_failed = next((i for i, s in enumerate(run.steps) if status_value(s.status) == "failed"), None)
    step_rows = [_step_row(s, ctx, i == first_failed) for i, s in enumerate(run.steps)]
    headers = ["component", "step", "status", "duration", "revision", "reasons", "error / output"]
    parts.append("<h2>Steps</h2>\n" + (_table(headers, step_rows, "steps") if step_rows else "<p>No steps yet.</p>"))
    checks = checks_of(run)
    if checks:
        rows = [_check_row(c, ctx) for c in checks]
        headers = ["check", "component", "status", "duration", "SLA", "finished", "log tail"]
        parts.append("<h2>Checks</h2>\n" + _table(headers, rows, "checks"))
    body = "\n".join(parts)
    title = f"run {run.id} ({st})"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">{refresh}<title>deploy-manager: {escape(title)}</title>
<style>{STYLE}</style></head>
<body><p><a href="/">&larr; cluster {escape(run.cluster)}</a></p>
<h1>Run {run.id}: {escape(st)}</h1>
{body}
</body></html>"""


def require_page_reader(request: Request, ctx: AppContext) -> None:
    """A read token as Bearer or as the Basic password; 401 asks a browser for Basic auth."""
    require_configured(request, ctx)
    header = request.headers.get("authorization")
    token = bearer_token(header) or basic_password(header)
    if token is None or ctx.auth.role(token) is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="a read token is needed (Bearer, or as the Basic auth password)",
            headers={"WWW-Authenticate": 'Basic realm="deploy-manager", charset="UTF-8"'},
        )


@router.get("/ui/runs/{run_id}", response_class=HTMLResponse, summary="HTML page of one run")
def run_page(request: Request, ctx: Ctx, run_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> HTMLResponse:
    require_page_reader(request, ctx)
    run = ctx.store.get_run(run_id)
    if run is None or run.cluster != ctx.settings.cluster:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"run {run_id} not found")
    return HTMLResponse(render_run(run, ctx), headers=HEADERS)
