"""kubectl's server-side printing."""

from __future__ import annotations

from datetime import UTC, datetime

from kubesim.tables import human_age, to_table


def test_human_age() -> None:
    now = datetime(2026, 1, 2, 0, 0, 0, tzinfo=UTC)
    assert human_age("2026-01-01T23:59:30Z", now) == "30s"
    assert human_age("2026-01-01T23:55:00Z", now) == "5m"
    assert human_age("2026-01-01T20:00:00Z", now) == "4h"
    assert human_age("2025-12-29T00:00:00Z", now) == "4d"
    assert human_age(None) == "<unknown>"


def test_deployment_columns() -> None:
    deploy = {"metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:00Z"},
              "spec": {"replicas": 3}, "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    table = to_table("apps", "Deployment", [deploy], "42")
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Ready", "Up-to-date", "Available", "Age"]
    assert table["rows"][0]["cells"][:4] == ["web", "2/3", 3, 2]
    assert table["rows"][0]["object"]["metadata"]["name"] == "web"
    assert table["metadata"] == {"resourceVersion": "42"}


def test_unknown_kinds_get_name_and_age() -> None:
    table = to_table("example.com", "Widget", [{"metadata": {"name": "w"}}], "1", "next")
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]
    assert table["metadata"]["continue"] == "next"
