"""Values merge and secret detection (pure)."""

from __future__ import annotations

import pytest

from deploy_manager.desired.values import deep_merge, get_path, is_secret_key, secret_values, sha256_hex


@pytest.mark.parametrize(
    ("base", "overlay", "merged"),
    [
        ({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}, {"a": {"b": 1, "c": 3}}),
        ({"a": [1, 2]}, {"a": [3]}, {"a": [3]}),
        ({"a": {"b": 1}}, {"a": "x"}, {"a": "x"}),
        ({"a": "x"}, {"a": {"b": 1}}, {"a": {"b": 1}}),
        ({}, {"a": None}, {"a": None}),
    ],
)
def test_deep_merge(base: dict, overlay: dict, merged: dict) -> None:
    assert deep_merge(base, overlay) == merged


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("password", True),
        ("db_PASSWORD", True),
        ("token", True),
        ("apiToken", True),
        ("secret", True),
        ("key", True),
        ("fernet_keys", True),
        ("apiKey", True),
        ("private_key", True),
        ("keystone", False),
        ("keys_dir_mode", False),
        ("monkey_business", False),
        ("debug", False),
    ],
)
def test_is_secret_key(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


def test_secret_values_collects_nested_and_marked() -> None:
    values = {
        "conf": {"db": {"password": "hunter22", "user": "admin"}, "auth": {"token": {"expiration": 3600}}},
        "endpoints": {"internal": "http://x"},
        "ldap": {"bind": "cn=admin-secret-dn"},
    }
    assert secret_values(values) == {"hunter22", "3600"}
    assert secret_values(values, ["ldap.bind"]) == {"hunter22", "3600", "cn=admin-secret-dn"}


def test_get_path_and_hash() -> None:
    assert get_path({"a": {"b": [1, {"c": 2}]}}, "a.b.1.c") == 2
    assert get_path({"a": 1}, "a.b") is None
    assert sha256_hex("ab", "c") != sha256_hex("a", "bc")
