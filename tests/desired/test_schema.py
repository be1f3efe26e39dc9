"""The published cluster.yaml JSON schema is generated from the pydantic model and up to date."""

from __future__ import annotations

import json

import jsonschema

from deploy_manager.desired.schema import SCHEMA_PATH, json_schema


def test_published_schema_is_up_to_date() -> None:
    assert SCHEMA_PATH.read_text() == json_schema(), "run: python -m deploy_manager.desired.schema"


def test_published_schema_validates_the_documented_form() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    doc = {
        "namespace": "openstack",
        "components": {
            "rabbitmq": {"chart": "charts/openstack/rabbitmq"},
            "keystone": {
                "chart": "charts/openstack/keystone",
                "needs": ["rabbitmq"],
                "bootstrap": [{"name": "db-sync", "when": "before", "inputs": ["conf.keystone.database"]}],
            },
        },
    }
    jsonschema.validate(doc, schema)
    doc["components"]["keystone"]["bogus"] = 1
    try:
        jsonschema.validate(doc, schema)
    except jsonschema.ValidationError as exc:
        assert "bogus" in exc.message
    else:
        raise AssertionError("extra keys must be rejected")


def test_remediation_keys_at_cluster_and_component_level() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    doc = {
        "remediation": {"retries": 1, "on_failure": "rollback"},
        "components": {"keystone": {"chart": "charts/openstack/keystone", "remediation": {"on_failure": "none"}}},
    }
    jsonschema.validate(doc, schema)
    for bad in ({"retries": -1}, {"on_failure": "explode"}, {"retry": 1}):
        doc["remediation"] = bad
        try:
            jsonschema.validate(doc, schema)
        except jsonschema.ValidationError:
            continue
        raise AssertionError(f"{bad} must be rejected")
