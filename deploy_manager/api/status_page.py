"""`GET /`: a small HTML status page listing the releases and the recent runs.

Same read token as the JSON API. A browser can send it as the password of HTTP Basic auth (any user name),
so the page answers 401 with `WWW-Authenticate: Basic`; tools can send `Authorization: Bearer`.
Every value is HTML-escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from deploy_manager.api.convert import run_out
from deploy_manager.api.deps import Ctx
from deploy_manager.api.run_page import (
    Html,
    latest_checks_html,
    page_headers,
    progress_html,
    require_page_reader,
    run_link,
)
from deploy_manager.api.smoke import latest as smoke_latest

router = APIRouter(tags=["status"])
RECENT_RUNS = 20
REFRESH_SECONDS = 2
STYLE = """body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}th{background:#eee}
tr.failed td{background:#fdd}tr.running td{background:#e3f0ff}pre{white-space:pre-wrap;max-width:60em}"""
# The page runs no script and loads nothing: only its own inline style (by hash) is allowed.
HEADERS = page_headers(STYLE)


def _cell(value: Any) -> str:
    if isinstance(value, Html):  # a link built from escaped parts
        return f"<td>{value}</td>"
    if value is None or value == "":
        return "<td>–</td>"
    text = value.isoformat(timespec="seconds") if hasattr(value, "isoformat") else str(value)
    return f"<td>{escape(text)}</td>"


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _run_in_progress(ctx: Ctx) -> str:
    """The running run's steps so far (the pipeline records each step as it finishes); "" when idle."""
    run_id = ctx.queue.running_run_id
    run = ctx.store.get_run(run_id) if run_id is not None else None
    if run is None:
        return ""
    rows = [
        [
            s.component,
            s.action,
            s.status.value,
            f"{s.duration:.1f} s",
            ctx.redact(s.reasons[0].message if s.reasons else ""),
        ]
        for s in run.steps
    ]
    table = _table(["component", "step", "status", "duration", "reason"], rows)
    now = progress_html(ctx.queue.progress())  # which component is being written now
    return (
        f"<h2>Run {run.id} in progress (commit {escape((run.commit or '')[:12])})</h2>\n"
        f"<p>{run_link(run.id, 'details of this run')}</p>\n{now}\n{table}\n"
    )


def _suspended(request: Request, ctx: Ctx, releases: list[Any]) -> str:
    """Issue 13: the suspensions (the suspend ConfigMap's, and the components planned `suspended` by cluster.yaml)."""
    state = getattr(request.app.state, "suspend", None)
    rows: list[list[Any]] = []
    error = ""
    if state is not None:
        try:
            rows = [[s.component or "(whole cluster)", s.by, s.at, s.reason] for s in state.current().all()]
        except Exception as exc:  # the page still renders: say why the list may be incomplete
            error = f"<p>the suspend ConfigMap cannot be read: {escape(ctx.redact(str(exc)) or '')}</p>"
    listed = {r[0] for r in rows}
    frozen = [r.component for r in releases if r.state == "suspended" and r.component not in listed]
    rows += [[name, "cluster.yaml", "", ""] for name in frozen]
    if not rows and not error:
        return ""
    return f"<h2>Suspended</h2>\n{error}{_table(['component', 'by', 'at', 'reason'], rows)}\n"


def _checks_section(ctx: Ctx) -> str:
    """The workflow checks' latest results (issue 14); nothing when the cluster declares none."""
    results = smoke_latest(ctx)
    if not results:
        return ""
    rows = [
        [
            r.name,
            r.component,
            r.status.value,
            f"{r.duration:.1f}s" + (f" / SLA {r.sla:g}s" if r.sla else ""),
            r.finished_at,
            r.run_id,
            ctx.redact.text(r.error),
        ]
        for r in results
    ]
    return (
        "<h2>Checks</h2>\n"
        + _table(["check", "component", "status", "duration", "finished", "run", "error"], rows)
        + "\n"
    )


def _drift_text(r: Any) -> str:
    """`no`, or the drifted objects and their fields (issue 13)."""
    if not r.drifted:
        return "no"
    return "DRIFTED: " + "; ".join(
        f"{d.kind} {d.name}: {'missing' if d.missing else ', '.join(d.paths)}" for d in r.drift
    )


@router.get("/", response_class=HTMLResponse, summary="HTML status page")
def status_page(request: Request, ctx: Ctx) -> HTMLResponse:
    require_page_reader(request, ctx)
    q, s = ctx.queue, ctx.settings
    releases = ctx.releases_cache.get(q, ctx.store, s.cluster).releases
    records = ctx.store.list_runs(cluster=s.cluster, limit=RECENT_RUNS)
    runs = [run_out(r, ctx.redact) for r in records]
    release_rows = [
        [
            r.component,
            r.release,
            r.namespace,
            r.chart,
            r.chart_version,
            r.revision,
            r.status,
            "yes" if r.healthy else "no",
            (r.commit or "")[:12],
            r.deployed_at,
            run_link(r.last_run_id) if r.last_run_id is not None else None,
            _drift_text(r),
        ]
        for r in releases
    ]
    run_rows = [
        [run_link(r.id), r.trigger, (r.commit or "")[:12], r.status, r.started_at, r.finished_at, r.error]
        for r in runs
    ]
    in_progress, refresh = _run_in_progress(ctx), ""
    if in_progress or q.depth:
        refresh = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'  # a browser follows the run on its own
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">{refresh}<title>deploy-manager: {escape(s.cluster)}</title>
<style>{STYLE}</style></head>
<body><h1>deploy-manager: cluster {escape(s.cluster)}</h1>
<p>branch <code>{escape(s.branch)}</code>, deployed commit <code>{escape(q.deployed_commit or "none")}</code>,
running run {escape(str(q.running_run_id or "none"))}, queued runs {q.depth}</p>
{in_progress}{_suspended(request, ctx, releases)}<h2>Releases</h2>
{
        _table(
            [
                "component",
                "release",
                "namespace",
                "chart",
                "version",
                "revision",
                "status",
                "healthy",
                "commit",
                "deployed at",
                "last run",
                "drift",
            ],
            release_rows,
        )
    }
{_checks_section(ctx) or latest_checks_html(records, ctx)}<h2>Recent runs</h2>
{_table(["id", "trigger", "commit", "status", "started", "finished", "error"], run_rows)}
</body></html>"""
    return HTMLResponse(page, headers=HEADERS)
