"""`plan --diff` / `GET /plan?diff=true`: for every component the plan writes, the deployed manifest (from the
release record the snapshot already read) against the new render (from the pre-flight render cache, rendered
and cached only when missing). Components the plan leaves alone are never rendered, so a no-op commit renders
nothing. The diff itself is pure (`planner.manifest_diff`); secrets are masked there.
"""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from deploy_manager.desired.values import secret_values
from deploy_manager.helm.runner import ChartRenderError
from deploy_manager.models.errors import ChartError
from deploy_manager.models.observed import ReleaseId
from deploy_manager.models.plan import Action
from deploy_manager.planner.diff import diff_paths
from deploy_manager.planner.manifest_diff import ObjectDiff, diff_manifests
from deploy_manager.planner.state import GONE
from deploy_manager.run import Run, Snapshot
from deploy_manager.source.git import GitSource

MSG_REMOTE = "chart {chart} is not in the repo: its render is left to helm (no diff)"


@dataclass(frozen=True)
class ComponentDiff:
    component: str
    release: str
    namespace: str
    action: str
    values_paths: tuple[str, ...]
    objects: tuple[ObjectDiff, ...]
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "release": self.release,
            "namespace": self.namespace,
            "action": self.action,
            "values_paths": list(self.values_paths),
            "objects": [o.to_dict() for o in self.objects],
            **({"note": self.note} if self.note else {}),
        }


def component_diffs(run: Run, source: GitSource, snap: Snapshot) -> list[ComponentDiff]:
    """One `ComponentDiff` per writing action, in plan order (renders in parallel, each cached)."""
    writes = [a for a in snap.plan.actions if a.writes]

    def one(action: Action) -> ComponentDiff:
        comp = snap.desired.components[action.component]
        obs = snap.observed.get(ReleaseId(comp.namespace, comp.release))
        deployed = obs if obs is not None and obs.status not in GONE else None
        old_values = deployed.config if deployed is not None else {}
        paths = tuple(diff_paths(old_values, comp.values))
        base = (action.component, action.release, action.namespace, action.action.value, paths)
        if comp.chart.path is None:
            return ComponentDiff(*base, objects=(), note=MSG_REMOTE.format(chart=comp.chart.describe()))
        try:
            new = run.rendered_manifest(source, snap.desired.commit, comp)
        except ChartRenderError as exc:
            raise ChartError(f"{comp.chart.path} (component {comp.name}): {exc}") from exc
        secrets = secret_values(comp.values, comp.secret_paths) | secret_values(old_values, comp.secret_paths)
        old = deployed.manifest if deployed is not None else ""
        objects = diff_manifests(old, new, namespace=comp.namespace, secrets=secrets)
        return ComponentDiff(*base, objects=tuple(objects))

    if not writes:
        return []
    with ThreadPoolExecutor(max_workers=max(1, run.max_parallel), thread_name_prefix="dm-diff") as pool:
        ctx = contextvars.copy_context()
        return list(pool.map(lambda a: ctx.copy().run(one, a), writes))


def plan_with_diff(plan: dict[str, Any], diffs: list[ComponentDiff]) -> dict[str, Any]:
    """The plan's JSON with `diff` (its objects) and `values_paths` on each writing action, and a flat top-level
    `diff` list (each object naming its component)."""
    by_component = {d.component: d for d in diffs}
    actions = []
    for action in plan["actions"]:
        d = by_component.get(action["component"])
        if d is not None:
            action = {**action, "diff": [o.to_dict() for o in d.objects], "values_paths": list(d.values_paths)}
            if d.note:
                action["diff_note"] = d.note
        actions.append(action)
    flat = [{"component": d.component, **o.to_dict()} for d in diffs for o in d.objects]
    return {**plan, "actions": actions, "diff": flat}


def diff_text(diffs: list[ComponentDiff]) -> str:
    """The human form: per component, the changed values paths, then each object's unified diff."""
    if not diffs:
        return "no component is written: nothing to diff"
    parts: list[str] = []
    for d in diffs:
        head = f"=== {d.component} ({d.namespace}/{d.release}): {d.action}"
        parts.append(head)
        if d.values_paths:
            parts.append(f"values changed: {', '.join(d.values_paths)}")
        if d.note:
            parts.append(d.note)
        elif not d.objects:
            parts.append("manifest unchanged")
        for o in d.objects:
            parts.append(f"--- {o.kind} {o.namespace + '/' if o.namespace else ''}{o.name}: {o.change.value}")
            parts.append(o.diff.rstrip("\n"))
    return "\n".join(parts)
