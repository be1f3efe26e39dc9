"""`SmokeJobs`: run one workflow check as a Kubernetes Job and report what it found (issue 14). Acts only.

The Job `smoke-<check>-<suffix>` runs in the check's component's namespace with the bootstrap Jobs' pod
(restricted profile, no ServiceAccount token, secrets as `SECRET_*` env from Secret references, never in
the script) and the component's `<release>-etc` Secret mounted at /etc/<component>/ when the chart has one.
The rendered script is a ConfigMap owned by the Job. The caller (the `smoke` step kind, the CLI, the
service's schedule) decides what runs and what the outcome means (`planner.smoke.verdict`).

Every run is a fresh Job (a random suffix), so two runs of a check never share one; the newest `history`
finished Jobs of a check stay for `kubectl logs`, older ones are deleted (their pods and script with them).
A Job still running when its timeout passed is deleted: the script's own per-run name prefix lets the next
run clean up what it left in OpenStack.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import secrets
import string
import time
from collections.abc import Collection
from typing import Any

from deploy_manager.bootstrap import manifests as m
from deploy_manager.bootstrap.engine import Backoff, _name, job_log
from deploy_manager.clock import now
from deploy_manager.desired.bootstrap import resolve_image
from deploy_manager.desired.values import secret_values
from deploy_manager.helm.runner import redact
from deploy_manager.kube.client import KubeClient
from deploy_manager.kube.jobs import JobsApi
from deploy_manager.models.desired import DesiredCluster
from deploy_manager.models.errors import DeployManagerError, KubeConflict, KubeError, KubeUnavailable
from deploy_manager.models.smoke import CheckOutcome, SmokeCheck

log = logging.getLogger(__name__)

_ALPHABET = string.ascii_lowercase + string.digits
# Polled more often than bootstrap Jobs: a check's duration is measured against its SLA.
POLL = Backoff(maximum=0.5)


def suffix() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(m.SMOKE_SUFFIX_LEN))


class SmokeJobs:
    """Runs checks as Jobs (see the module docstring). Thread-safe: it keeps no state between checks."""

    def __init__(
        self,
        kube: KubeClient,
        *,
        pod_policy: m.JobPodPolicy | None = None,
        history: int = 3,
        backoff: Backoff = POLL,
    ) -> None:
        self.api = JobsApi(kube)
        self.pod_policy = pod_policy or m.JobPodPolicy()
        self.history = max(1, history)
        self.backoff = backoff

    def __call__(self, check: SmokeCheck, cluster: DesiredCluster, run_id: int | None) -> CheckOutcome:
        comp = cluster.components[check.component]
        started, t0 = now(), time.monotonic()
        hidden = secret_values(comp.values, comp.secret_paths)
        job = ""

        def could_not(message: str) -> CheckOutcome:
            return CheckOutcome(None, time.monotonic() - t0, message, "", job, None, started, now(), comp.namespace)

        hidden = {*hidden, *self._env_secrets(comp.namespace, comp.values)}
        image = resolve_image(comp.values, check.image)
        if not image:
            return could_not(f"images.tags.{check.image} is not set in the values of {comp.name}")
        try:
            etc_name = f"{comp.release}-etc"
            etc = etc_name if self.api.get_secret(comp.namespace, etc_name) is not None else None
            job = m.smoke_job_name(check.name, suffix())
            body = m.smoke_job_manifest(
                name=job,
                cluster=cluster.name,
                comp=comp,
                check=check.name,
                image=image,
                timeout=check.timeout,
                etc_secret=etc,
                commit=cluster.commit,
                run_id=run_id,
                policy=self.pod_policy,
            )
            created = self.api.create_job(comp.namespace, body)
            try:
                try:
                    self.api.create_configmap(comp.namespace, m.script_configmap(job, created, check.rendered))
                except KubeConflict:
                    self.api.replace_configmap(comp.namespace, m.script_configmap(job, created, check.rendered))
            except DeployManagerError:
                self.api.delete_job(comp.namespace, job)  # a Job without its script would never start
                raise
            t0 = time.monotonic()  # the check's duration starts with its Job
            log.info("cluster=%s check=%s job=%s/%s started", cluster.name, check.name, comp.namespace, job)
            ok, message, log_tail, exit_code = self._wait(comp.namespace, job, check.timeout, hidden)
        except DeployManagerError as exc:
            return could_not(redact(str(exc), hidden))
        duration = time.monotonic() - t0
        self._prune(cluster.name, comp.name, comp.namespace, check.name, keep=job)
        return CheckOutcome(ok, duration, message, log_tail, job, exit_code, started, now(), comp.namespace)

    def _env_secrets(self, namespace: str, values: dict[str, Any]) -> set[str]:
        """The values of the Secrets the Job gets as SECRET_* env: a script that prints one (`set -x`, an error
        message quoting its input) must not put it in the log tail. Best effort: an unreadable Secret is skipped."""
        found: set[str] = set()
        for item in m.secret_env(values):
            ref = item["valueFrom"]["secretKeyRef"]
            try:
                secret = self.api.get_secret(namespace, ref["name"])
            except KubeError:
                continue
            raw = ((secret or {}).get("data") or {}).get(ref["key"])
            if raw:
                with contextlib.suppress(ValueError):
                    value = base64.b64decode(raw).decode(errors="replace")
                    if len(value) >= 4:
                        found.add(value)
        return found

    def _wait(
        self, namespace: str, job: str, timeout: int, hidden: Collection[str]
    ) -> tuple[bool, str, str, int | None]:
        deadline = time.monotonic() + timeout
        delay = self.backoff.initial
        while True:
            try:
                current = self.api.get_job(namespace, job)
            except KubeUnavailable as exc:  # an API blip must not fail a check that runs fine: poll on
                log.warning("reading Job %s/%s failed, retrying: %s", namespace, job, exc)
                current = {"metadata": {"name": job}}
            if current is None:
                return False, "the Job was deleted while running", "", None
            if m.job_finished(current):
                ok = m.job_complete(current)
                log_tail, exit_code = self._logs(namespace, current, hidden)
                return ok, "completed" if ok else m.job_failure_message(current), log_tail, exit_code
            if time.monotonic() >= deadline:
                log_tail, exit_code = self._logs(namespace, current, hidden)
                self.api.delete_job(namespace, job)
                return False, f"did not finish within {timeout}s", log_tail, exit_code
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * self.backoff.factor, self.backoff.maximum)

    def _logs(self, namespace: str, job: dict[str, Any], hidden: Collection[str]) -> tuple[str, int | None]:
        return job_log(self.api, namespace, job, hidden)

    def _prune(self, cluster: str, component: str, namespace: str, check: str, *, keep: str) -> None:
        """Keep the newest `history` Jobs of the check (the current one always); best effort."""
        try:
            jobs = self.api.list_jobs(namespace, m.smoke_selector(cluster, component, check))
            others = sorted((j for j in jobs if _name(j) != keep), key=m.creation_key, reverse=True)
            for job in others[self.history - 1 :]:
                if m.job_finished(job):
                    self.api.delete_job(namespace, _name(job))
        except KubeError as exc:
            log.warning("pruning the Jobs of check %s failed: %s", check, exc)
