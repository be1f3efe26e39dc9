"""Prometheus metrics of one service instance (prometheus-client), in a registry of its own.

Contract: every `create_app` builds its own `ServiceMetrics` (so two apps in one process, as in tests, never
share or collide), the run queue and the webhook routes update it, and `GET /metrics` renders `registry`.
Releases by status are read from the store at scrape time, so the gauge is never stale and needs no updates.
No label ever carries a commit, token or free text: label values come from small fixed sets.
"""

from __future__ import annotations

from collections import Counter as _Tally
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# Runs take seconds to many minutes; helm commands from sub-second (list) to the release timeout.
RUN_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600)
HELM_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class _ReleasesByStatus(Collector):
    """`deploy_manager_releases{status=...}` computed from the store when scraped."""

    def __init__(self, statuses: Callable[[], Iterable[str]]) -> None:
        self._statuses = statuses

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "deploy_manager_releases", "Releases of the cluster by helm status", labels=["status"]
        )
        for status, count in sorted(_Tally(self._statuses()).items()):
            family.add_metric([status], count)
        yield family


class _SmokeChecks(Collector):
    """`deploy_manager_smoke_check_success{cluster,check}` (1 passed, else 0) and
    `deploy_manager_smoke_check_duration_seconds{cluster,check}`: each check's latest result, read at scrape time
    (issue 14). Check names are DNS labels from the values repo: a small, fixed set."""

    def __init__(self, cluster: str, latest: Callable[[], Iterable[Any]]) -> None:
        self._cluster = cluster
        self._latest = latest

    def collect(self) -> Iterator[GaugeMetricFamily]:
        success = GaugeMetricFamily(
            "deploy_manager_smoke_check_success",
            "1 if the check's latest result is passed (within its SLA), else 0",
            labels=["cluster", "check"],
        )
        duration = GaugeMetricFamily(
            "deploy_manager_smoke_check_duration_seconds",
            "Duration of the check's latest run",
            labels=["cluster", "check"],
        )
        try:
            results = list(self._latest())
        except Exception:  # a scrape must not fail because the store is busy
            results = []
        for r in results:
            success.add_metric([self._cluster, r.name], 1.0 if r.status.ok else 0.0)
            duration.add_metric([self._cluster, r.name], float(r.duration))
        yield success
        yield duration


class _ReleaseDrifted(Collector):
    """`deploy_manager_release_drifted{cluster,component}` (0/1) from the last drift check, when scraped."""

    def __init__(self, drifted: Callable[[], Iterable[tuple[str, str, int]]]) -> None:
        self._drifted = drifted

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "deploy_manager_release_drifted",
            "1 if the last drift check found live objects of the release differing from its manifest, else 0",
            labels=["cluster", "component"],
        )
        for cluster, component, value in self._drifted():
            family.add_metric([cluster, component], value)
        yield family


class ServiceMetrics:
    """The service's metrics; `registry` is what /metrics renders."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.runs = Counter("deploy_manager_runs", "Finished runs by result", ["result"], registry=r)
        self.run_duration = Histogram(
            "deploy_manager_run_duration_seconds", "Duration of runs", ["result"], buckets=RUN_BUCKETS, registry=r
        )
        self.helm_duration = Histogram(
            "deploy_manager_helm_command_duration_seconds",
            "Duration of helm commands run by the manager",
            ["command"],
            buckets=HELM_BUCKETS,
            registry=r,
        )
        self.last_success = Gauge(
            "deploy_manager_last_success_timestamp_seconds",
            "Unix time the last successful run finished (its commit was fully deployed)",
            registry=r,
        )
        self.retries = Counter(
            "deploy_manager_retries",
            "Retries by reason: temporary (a run re-queued after a temporary error), failed (the slow retry of a "
            "failed cluster), step (an attempt retried inside a run)",
            ["reason"],
            registry=r,
        )
        self.queue_depth = Gauge("deploy_manager_queue_depth", "Runs waiting to start (0 or 1)", registry=r)
        self.run_in_progress = Gauge("deploy_manager_run_in_progress", "1 while a run executes", registry=r)
        self.webhooks = Counter(
            "deploy_manager_webhook_requests", "Webhook requests by hook and outcome", ["hook", "outcome"], registry=r
        )
        self.triggers = Counter(
            "deploy_manager_triggers",
            "Triggers by source and result (queued|coalesced)",
            ["trigger", "result"],
            registry=r,
        )
        self.dependency_up = Gauge(
            "deploy_manager_dependency_up",
            "1 if the dependency answered the last /readyz check (store, kubernetes, git), else 0",
            ["dependency"],
            registry=r,
        )
        # Commit statuses and run-end notifications (issue 14); both series exist from the start, so an alert
        # on their increase needs no `absent()`.
        self.notify_failures = Counter(
            "deploy_manager_notify_failures",
            "Commit statuses (target github) and run notifications (target webhook) given up after retries",
            ["target"],
            registry=r,
        )
        self.notify_sent = Counter(
            "deploy_manager_notify_sent", "Commit statuses and run notifications delivered", ["target"], registry=r
        )
        for target in ("github", "webhook"):
            self.notify_failures.labels(target)
            self.notify_sent.labels(target)
        self._releases: _ReleasesByStatus | None = None
        self._drift: _ReleaseDrifted | None = None

    def watch_smoke(self, cluster: str, latest: Callable[[], Iterable[Any]]) -> None:
        """Register the scrape-time workflow-check collector (once)."""
        if getattr(self, "_smoke", None) is None:
            self._smoke = _SmokeChecks(cluster, latest)
            self.registry.register(self._smoke)

    def watch_releases(self, statuses: Callable[[], Iterable[str]]) -> None:
        """Register the scrape-time releases-by-status collector (once)."""
        if self._releases is None:
            self._releases = _ReleasesByStatus(statuses)
            self.registry.register(self._releases)

    def watch_drift(self, drifted: Callable[[], Iterable[tuple[str, str, int]]]) -> None:
        """Register the scrape-time release-drifted collector (once)."""
        if self._drift is None:
            self._drift = _ReleaseDrifted(drifted)
            self.registry.register(self._drift)
