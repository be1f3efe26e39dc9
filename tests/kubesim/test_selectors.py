"""Label and field selectors, as kubectl/helm/client-go spell them."""

from __future__ import annotations

import pytest

from kubesim.errors import ApiError
from kubesim.selectors import (
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
    selector_from_object,
)

LABELS = {"app": "web", "tier": "front", "app.kubernetes.io/instance": "r1", "n": "5"}


@pytest.mark.parametrize(("selector", "matches"), [
    ("", True),
    ("app=web", True),
    ("app==web,tier=front", True),
    ("app!=web", False),
    ("missing!=x", True),
    ("app in (web, api)", True),
    ("app notin (web)", False),
    ("tier,app.kubernetes.io/instance=r1", True),
    ("!tier", False),
    ("!missing", True),
    ("n>4,n<6", True),
    ("name=r1,owner=helm", False),
])
def test_label_selector_strings(selector: str, matches: bool) -> None:
    assert labels_match(parse_label_selector(selector), LABELS) is matches


@pytest.mark.parametrize("bad", ["a in (b", "=x", "a>b", "a b"])
def test_bad_label_selectors_are_400(bad: str) -> None:
    with pytest.raises(ApiError) as err:
        parse_label_selector(bad)
    assert err.value.code == 400


def test_label_selector_objects() -> None:
    selector = selector_from_object({"matchLabels": {"app": "web"},
                                     "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]},
                                                          {"key": "gone", "operator": "DoesNotExist"}]})
    assert selector is not None and labels_match(selector, LABELS)
    assert selector_from_object({"matchExpressions": [{"key": "a", "operator": "Bogus"}]}) is None


def test_field_selectors() -> None:
    secret = {"metadata": {"name": "sh.helm.release.v1.r1.v1", "namespace": "ns"}, "type": "helm.sh/release.v1"}
    assert fields_match(parse_field_selector("metadata.name=sh.helm.release.v1.r1.v1", "", "secrets"), secret)
    assert fields_match(parse_field_selector("type==helm.sh/release.v1,metadata.namespace!=other", "", "secrets"),
                        secret)
    assert not fields_match(parse_field_selector("metadata.namespace=other", "", "secrets"), secret)
    with pytest.raises(ApiError, match="field label not supported: type"):
        parse_field_selector("type=x", "", "configmaps")
