"""kubesim.patch.jsonpatch: RFC 6902 JSON patch with apiserver status codes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubesim.patch.errors import PatchError
from kubesim.patch.jsonpatch import apply_json_patch

# Source: RFC 6902, Appendix A (A.1-A.8, A.10, A.11, A.14, A.16): (document, patch, result).
RFC6902_OK: list[tuple[str, Any, list[dict[str, Any]], Any]] = [
    (
        "A.1 add object member",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux"}],
        {"baz": "qux", "foo": "bar"},
    ),
    (
        "A.2 add array element",
        {"foo": ["bar", "baz"]},
        [{"op": "add", "path": "/foo/1", "value": "qux"}],
        {"foo": ["bar", "qux", "baz"]},
    ),
    ("A.3 remove object member", {"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    (
        "A.4 remove array element",
        {"foo": ["bar", "qux", "baz"]},
        [{"op": "remove", "path": "/foo/1"}],
        {"foo": ["bar", "baz"]},
    ),
    (
        "A.5 replace a value",
        {"baz": "qux", "foo": "bar"},
        [{"op": "replace", "path": "/baz", "value": "boo"}],
        {"baz": "boo", "foo": "bar"},
    ),
    (
        "A.6 move a value",
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    (
        "A.7 move an array element",
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
        {"foo": ["all", "cows", "eat", "grass"]},
    ),
    (
        "A.8 test a value: success",
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
        {"baz": "qux", "foo": ["a", 2, "c"]},
    ),
    (
        "A.10 add a nested member object",
        {"foo": "bar"},
        [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
        {"foo": "bar", "child": {"grandchild": {}}},
    ),
    (
        "A.11 ignore unrecognized elements",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
        {"foo": "bar", "baz": "qux"},
    ),
    ("A.14 ~ escape ordering", {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
    (
        "A.16 adding an array value",
        {"foo": ["bar"]},
        [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
        {"foo": ["bar", ["abc", "def"]]},
    ),
    (
        "kubectl patch --type=json example: replace a container image by index",
        {"spec": {"containers": [{"name": "c", "image": "old"}]}},
        [{"op": "replace", "path": "/spec/containers/0/image", "value": "new image"}],
        {"spec": {"containers": [{"name": "c", "image": "new image"}]}},
    ),
]

# Source: RFC 6902 Appendix A.9, A.12, A.15 (errors) plus malformed documents (400 in the apiserver).
RFC6902_ERRORS: list[tuple[str, Any, Any, int]] = [
    ("A.9 test a value: error", {"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}], 422),
    (
        "A.12 adding to a nonexistent target",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz/bat", "value": "qux"}],
        422,
    ),
    ("A.15 comparing strings and numbers", {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}], 422),
    ("remove a missing member", {"a": 1}, [{"op": "remove", "path": "/b"}], 422),
    ("not a list", {"a": 1}, {"op": "add"}, 400),
    ("unknown op", {"a": 1}, [{"op": "frobnicate", "path": "/a"}], 400),
    ("missing path", {"a": 1}, [{"op": "add", "value": 1}], 400),
    ("missing value", {"a": 1}, [{"op": "add", "path": "/b"}], 400),
]


@pytest.mark.parametrize(("doc", "ops", "expected"), [c[1:] for c in RFC6902_OK], ids=[c[0] for c in RFC6902_OK])
def test_rfc6902(doc: Any, ops: list[dict[str, Any]], expected: Any) -> None:
    before = copy.deepcopy(doc)
    assert apply_json_patch(doc, ops) == expected
    assert doc == before


@pytest.mark.parametrize(("doc", "ops", "code"), [c[1:] for c in RFC6902_ERRORS], ids=[c[0] for c in RFC6902_ERRORS])
def test_rfc6902_errors(doc: Any, ops: Any, code: int) -> None:
    before = copy.deepcopy(doc)
    with pytest.raises(PatchError) as info:
        apply_json_patch(doc, ops)
    assert info.value.code == code
    assert info.value.status()["code"] == code
    assert info.value.status()["reason"] == ("BadRequest" if code == 400 else "Invalid")
    assert doc == before
