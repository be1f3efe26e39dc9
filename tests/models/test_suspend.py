"""The suspend ConfigMap's data <-> Suspensions (pure)."""

from __future__ import annotations

from deploy_manager.models.suspend import Suspension, Suspensions


def test_round_trip_through_the_configmap_data() -> None:
    found = (
        Suspensions()
        .with_suspension(Suspension(None, by="alice@h", reason="incident", at="t1", source="cli"))
        .with_suspension(Suspension("nova", by="api", reason="db", at="t2", source="api"))
    )
    data = found.data()
    assert set(data) == {"cluster", "component.nova"}
    again = Suspensions.from_data(data)
    assert again == found and again.data() == data
    assert again.for_component("nova") == found.components["nova"]
    assert again.for_component("glance") == found.cluster
    assert again.without("nova").without(None).data() == {}


def test_a_garbled_entry_still_suspends_and_foreign_keys_are_ignored() -> None:
    found = Suspensions.from_data({"component.nova": "{not json", "note": "hello", "component.": "{}"})
    assert list(found.components) == ["nova"] and found.cluster is None
    assert "unreadable" in found.components["nova"].describe()


def test_describe_names_who_when_and_why() -> None:
    s = Suspension("nova", by="bob@ops", reason="rabbit down", at="2026-11-28T10:00:00+00:00", source="cli")
    assert s.describe() == "component nova suspended by bob@ops at 2026-11-28T10:00:00+00:00: rabbit down"
    assert Suspension(None, by="api").describe() == "cluster suspended by api"
    assert s.to_dict()["message"] == s.describe()
