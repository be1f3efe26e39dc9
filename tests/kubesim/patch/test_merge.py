"""kubesim.patch.merge: JSON merge patch."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubesim.patch.merge import json_merge_patch

# Source: RFC 7386, Appendix A "Example Test Cases" (original, patch, result), verbatim.
RFC7386_APPENDIX_A: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]

# Source: RFC 7386 section 3 "Example" (the title/author/tags document).
RFC7386_SECTION3 = (
    {
        "title": "Goodbye!",
        "author": {"givenName": "John", "familyName": "Doe"},
        "tags": ["example", "sample"],
        "content": "This will be unchanged",
    },
    {"title": "Hello!", "phoneNumber": "+01-123-456-7890", "author": {"familyName": None}, "tags": ["example"]},
    {
        "title": "Hello!",
        "author": {"givenName": "John"},
        "tags": ["example"],
        "content": "This will be unchanged",
        "phoneNumber": "+01-123-456-7890",
    },
)


@pytest.mark.parametrize(("target", "patch", "expected"), [*RFC7386_APPENDIX_A, RFC7386_SECTION3])
def test_rfc7386(target: Any, patch: Any, expected: Any) -> None:
    before = copy.deepcopy(target)
    assert json_merge_patch(target, patch) == expected
    assert target == before


def test_lists_of_containers_are_replaced() -> None:
    # Source: kubernetes.io update-api-object-kubectl-patch, "Use a JSON merge patch to update a Deployment":
    # the containers list is replaced, not merged.
    live = {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b"}]}}}}
    patch = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "patch-demo-ctr-3", "image": "gcr.io/google-samples/hello-app:2.0"}]}
            }
        }
    }
    out = json_merge_patch(live, patch)
    assert out["spec"]["template"]["spec"]["containers"] == [
        {"name": "patch-demo-ctr-3", "image": "gcr.io/google-samples/hello-app:2.0"}
    ]
