"""`deploy-manager plan|apply|status|history`: the core loop from the command line.

Exit codes: 0 success; 1 an apply in which some action failed or was blocked; 2 an error before any
change (bad input, unknown revision, unreachable cluster). Errors are one line on stderr, no traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from deploy_manager.cli import app
from deploy_manager.commands.options import (
    ClusterOpt,
    HelmBinOpt,
    KubeconfigOpt,
    KubeContextOpt,
    LeaseNamespaceOpt,
    OutputFormat,
    OutputOpt,
    RepoOpt,
    RevOpt,
    StateDirOpt,
)

if TYPE_CHECKING:
    from deploy_manager.pipeline import Pipeline
    from deploy_manager.source.credentials import GitCredentials
    from deploy_manager.source.git import GitSource
    from deploy_manager.store.sqlite import RunStore

EXIT_FAILED = 1
EXIT_ERROR = 2


@contextmanager
def _errors() -> Iterator[None]:
    """Turn every failure into one precise line on stderr and a non-zero exit."""
    from deploy_manager.models.errors import DeployManagerError

    try:
        yield
    except typer.Exit:
        raise
    except DeployManagerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_ERROR) from None
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        raise typer.Exit(130) from None
    except Exception as exc:  # a bug still gets one line, not a traceback
        typer.echo(f"error: internal: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(EXIT_ERROR) from None


def _state_dir(state_dir: Path | None) -> Path:
    from deploy_manager.source.git import default_state_dir

    return state_dir if state_dir is not None else default_state_dir()


def _store(state_dir: Path | None) -> RunStore:
    from deploy_manager.store.sqlite import RunStore

    return RunStore.in_dir(_state_dir(state_dir))


def _git_credentials() -> GitCredentials:
    """DM_GIT_* (and their _FILE forms) from the environment, as the service reads them."""
    from pydantic import ValidationError

    from deploy_manager.config import ENV_PREFIX, GitSettings
    from deploy_manager.models.errors import SourceError

    try:
        return GitSettings().git_credentials()  # type: ignore[call-arg]  # fields come from the environment
    except ValidationError as exc:
        # Never the input: it may be the token or the key.
        err = exc.errors(include_input=False, include_url=False)[0]
        name = f"{ENV_PREFIX}{str(err['loc'][0]).upper()}" if err["loc"] else "git settings"
        raise SourceError(f"{name}: {err['msg']}") from None


def _source(repo: str, state_dir: Path | None) -> GitSource:
    from deploy_manager.source.git import GitSource

    src = GitSource(repo, mirror_dir=_state_dir(state_dir) / "mirrors", credentials=_git_credentials())
    src.fetch()
    return src


def _pipeline(
    kubeconfig: Path | None,
    kube_context: str | None,
    state_dir: Path | None,
    helm_bin: str,
    lease_namespace: str | None = None,
) -> Pipeline:
    import os

    from deploy_manager.config import default_lease_namespace
    from deploy_manager.wiring import build_pipeline

    return build_pipeline(
        helm_bin=helm_bin,
        kubeconfig=kubeconfig,
        kube_context=kube_context,
        store=_store(state_dir),
        state_dir=_state_dir(state_dir),
        # The suspend ConfigMap lives next to the cluster's Lease (issue 13).
        suspend_namespace=lease_namespace or os.environ.get("DM_LEASE_NAMESPACE") or default_lease_namespace(),
    )


@contextmanager
def _cluster_lease(
    cluster: str,
    kubeconfig: Path | None,
    kube_context: str | None,
    wait_seconds: float,
    lease_namespace: str | None = None,
) -> Iterator[None]:
    """Hold the cluster's Lease (the one the service takes) for the whole apply, so a person's `apply` never
    races the service on the same releases. Waits up to `wait_seconds`, else exits 2 naming the holder."""
    import os
    import time

    from deploy_manager.config import default_identity, default_lease_namespace, lease_name_for
    from deploy_manager.lease import ClusterLease, KubernetesLeaseBackend
    from deploy_manager.models.errors import LeaseUnavailable

    name = os.environ.get("DM_LEASE_NAME") or lease_name_for(cluster)
    namespace = lease_namespace or os.environ.get("DM_LEASE_NAMESPACE") or default_lease_namespace()
    backend = KubernetesLeaseBackend(name=name, namespace=namespace, kubeconfig=kubeconfig, context=kube_context)
    lease = ClusterLease(backend, identity=f"cli-{default_identity()}", retry_seconds=0.5)
    deadline = time.monotonic() + wait_seconds
    # An unreachable API or a refused Lease fails at once (exit 2); only a held Lease is waited for.
    while not lease.try_acquire() and time.monotonic() < deadline:
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
    if not lease.held:
        try:
            current = backend.get()
            holder = (current.holder if current else None) or "nobody (it could not be taken)"
        except LeaseUnavailable as exc:
            holder = f"unknown ({exc})"
        typer.echo(
            f"error: the cluster lease {namespace}/{name} is held by {holder}; waited {wait_seconds:g}s (--lease-wait)",
            err=True,
        )
        raise typer.Exit(EXIT_ERROR)
    try:
        yield
    finally:
        lease.release()


def _emit(data: Any, output: OutputFormat, table: Callable[[], str]) -> None:
    if output is OutputFormat.json:
        typer.echo(json.dumps(data, indent=2))
    elif output is OutputFormat.yaml:
        import yaml

        typer.echo(yaml.safe_dump(data, sort_keys=False).rstrip())
    else:
        typer.echo(table())


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h).upper() for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)


def _reasons_text(reasons: list[str]) -> str:
    return "; ".join(reasons)


@app.command()
def plan(
    repo: RepoOpt,
    cluster: ClusterOpt,
    rev: RevOpt = "HEAD",
    output: OutputOpt = OutputFormat.table,
    kubeconfig: KubeconfigOpt = None,
    kube_context: KubeContextOpt = None,
    state_dir: StateDirOpt = None,
    helm_bin: HelmBinOpt = "helm",
    lease_namespace: LeaseNamespaceOpt = None,
    diff: bool = typer.Option(
        False,
        "--diff",
        help="Also show, per component written, the deployed manifest against the new render (secrets masked).",
    ),
) -> None:
    """Show what an apply of REV would do for the cluster. Never writes to the cluster."""
    with _errors():
        pipe = _pipeline(kubeconfig, kube_context, state_dir, helm_bin, lease_namespace)
        if diff:
            from deploy_manager.plan_diff import diff_text, plan_with_diff

            the_plan, diffs = pipe.plan_diff(_source(repo, state_dir), cluster, rev)
            data = plan_with_diff(the_plan.to_dict(), diffs)
            _emit(data, output, lambda: _plan_table(data) + "\n\n" + diff_text(diffs))
            return
        data = pipe.plan(_source(repo, state_dir), cluster, rev).to_dict()
        _emit(data, output, lambda: _plan_table(data))


def _plan_table(data: dict[str, Any]) -> str:
    return format_table(
        ["wave", "component", "namespace", "release", "action", "reasons"],
        [
            (a["wave"], a["component"], a["namespace"], a["release"], a["action"], _reasons_text(a["reasons"]))
            for a in data["actions"]
        ],
    )


@app.command()
def apply(
    repo: RepoOpt,
    cluster: ClusterOpt,
    rev: RevOpt = "HEAD",
    output: OutputOpt = OutputFormat.table,
    kubeconfig: KubeconfigOpt = None,
    kube_context: KubeContextOpt = None,
    state_dir: StateDirOpt = None,
    helm_bin: HelmBinOpt = "helm",
    max_parallel: int = typer.Option(4, "--max-parallel", min=1, help="Releases written at the same time."),
    lease_wait: float = typer.Option(
        60.0,
        "--lease-wait",
        min=0,
        help="Seconds to wait for the cluster's Lease (held by the service or another apply).",
    ),
    lease_namespace: LeaseNamespaceOpt = None,
) -> None:
    """Apply REV to the cluster: exactly the helm upgrades it needs, in dependency order. Exit 1 if any fails.

    Holds the cluster's Lease (the service's) while it runs; exit 2 if it is not free within --lease-wait."""
    with _errors():
        pipe = _pipeline(kubeconfig, kube_context, state_dir, helm_bin, lease_namespace)
        pipe.max_parallel = max_parallel
        source = _source(repo, state_dir)
        from deploy_manager.run import resolve

        commit = resolve(source, rev)
        # Bad input or an unreachable cluster is reported (and recorded) before waiting for the Lease.
        pipe.preflight_check(source, cluster, commit, trigger="cli")
        with _cluster_lease(cluster, kubeconfig, kube_context, lease_wait, lease_namespace):
            # Holding the cluster's Lease, no other run of it is alive: one left `running` died with its process.
            pipe.store.mark_interrupted(cluster)
            run = pipe.apply(source, cluster, commit, trigger="cli")
        data = run.to_dict()
        _emit(
            data,
            output,
            lambda: (
                format_table(
                    ["component", "namespace", "release", "action", "result", "revision", "seconds", "detail"],
                    [
                        (
                            s["component"],
                            s["namespace"],
                            s["release"],
                            s["action"],
                            s["status"],
                            s["helm_revision"],
                            f"{s['duration']:.1f}",
                            s["error"] or _reasons_text(s["reasons"]),
                        )
                        for s in data["steps"]
                    ],
                )
                + f"\nrun {run.id}: {run.status.value} ({run.cluster} at {str(run.commit)[:12]})"
            ),
        )
        if run.status.value != "succeeded":
            raise typer.Exit(EXIT_FAILED)


@app.command()
def status(
    cluster: ClusterOpt,
    output: OutputOpt = OutputFormat.table,
    kubeconfig: KubeconfigOpt = None,
    kube_context: KubeContextOpt = None,
    state_dir: StateDirOpt = None,
    helm_bin: HelmBinOpt = "helm",
    lease_namespace: LeaseNamespaceOpt = None,
) -> None:
    """Deployed releases of the cluster, read from Helm's release records (not from our database), and the
    suspensions in the cluster's suspend ConfigMap."""
    with _errors():
        from deploy_manager.commands.drift_cmd import status_drift
        from deploy_manager.commands.freeze_cmds import read_suspensions
        from deploy_manager.kube.client import KubeClient
        from deploy_manager.observe import cluster_releases

        kube = KubeClient(kubeconfig=kubeconfig, context=kube_context)
        frozen = read_suspensions(kube, cluster, lease_namespace)
        releases = cluster_releases(kube, cluster)
        drift = status_drift(kube, cluster, releases, state_dir)
        rows: list[dict[str, Any]] = [
            {
                "component": r.labels.get("component", r.name),
                "release": r.name,
                "namespace": r.namespace,
                "chart": r.chart_name,
                "chart_version": r.chart_version,
                "revision": r.revision,
                "status": r.status,
                "commit": r.commit,
                "digest": r.digest,
                "updated": r.updated,
                # Same names as the service's /releases; without a plan here, `commit` is the deployed one too.
                "deployed_commit": r.commit,
                "deployed_at": r.updated,
                # Live objects against the release's manifest (issue 13).
                "drifted": bool((drift.get(r.labels.get("component", r.name)) or {}).get("drifted")),
                "drift": (drift.get(r.labels.get("component", r.name)) or {}).get("drift", []),
            }
            for r in releases
        ]
        for row in rows:  # issue 13: who froze it and why (suspend/resume); null when it is not suspended
            found = frozen.for_component(row["component"]) if frozen is not None else None
            row["suspended"] = found.to_dict() if found is not None else None
        notes = "".join(f"{s.describe()}\n" for s in (frozen.all() if frozen is not None else []))
        _emit(
            rows,
            output,
            lambda: (
                notes
                + format_table(
                    ["component", "namespace", "release", "chart", "revision", "status", "commit", "drifted"],
                    [
                        (
                            r["component"],
                            r["namespace"],
                            r["release"],
                            f"{r['chart']}-{r['chart_version']}",
                            r["revision"],
                            r["status"],
                            (r["commit"] or "")[:12],
                            "yes" if r["drifted"] else "no",
                        )
                        for r in rows
                    ],
                )
            ),
        )


@app.command()
def history(
    cluster: ClusterOpt,
    output: OutputOpt = OutputFormat.table,
    limit: int = typer.Option(20, "--limit", min=1, help="Most recent runs to show."),
    kubeconfig: KubeconfigOpt = None,
    kube_context: KubeContextOpt = None,
    state_dir: StateDirOpt = None,
    helm_bin: HelmBinOpt = "helm",
) -> None:
    """Recorded runs of the cluster and their steps (from the local database)."""
    with _errors():
        runs = [r.to_dict() for r in _store(state_dir).list_runs(cluster=cluster, limit=limit)]

        def table() -> str:
            rows: list[tuple[Any, ...]] = []
            for r in runs:
                rows.append(
                    (r["id"], r["created_at"], (r["commit"] or "")[:12], r["trigger"], r["status"], "", "", r["error"])
                )
                for s in r["steps"]:
                    if s["status"] != "skipped":
                        rows.append(
                            (
                                "",
                                "",
                                "",
                                "",
                                "",
                                s["component"],
                                f"{s['action']}:{s['status']}",
                                s["error"] or _reasons_text(s["reasons"]),
                            )
                        )
            return format_table(["run", "created", "commit", "trigger", "status", "component", "step", "detail"], rows)

        _emit(runs, output, table)
