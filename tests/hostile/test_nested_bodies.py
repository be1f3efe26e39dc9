"""Finding 4: any malformed body on a JSON endpoint (`POST /hooks/github` as JSON and as GitHub's form encoding,
`POST /hooks/jenkins` as JSON and as `curl -d`'s form type, `POST /runs`) is a 400 with a one-line reason:
nesting of every depth up to the body limit, bad UTF-8, a number past Python's digit limit. No run is created,
nothing is written to the cluster, and the service stays healthy."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

import pytest

from deploy_manager.api.deps import MAX_JSON_DEPTH, json_depth
from tests.hostile.conftest import Remote, Service
from tests.servicelib import JENKINS_TOKEN, WRITE_TOKEN, github_headers

pytestmark = [pytest.mark.helm, pytest.mark.slow]


def _nest(depth: int, kind: str) -> bytes:
    if kind == "lists":
        return b"[" * depth + b"]" * depth
    if kind == "objects":
        return b'{"a":' * depth + b"1" + b"}" * depth
    # a valid-looking push whose `ref` is nested
    return b'{"ref": ' + b"[" * depth + b"]" * depth + b', "after": "' + b"a" * 40 + b'"}'


BODIES: dict[str, bytes] = {
    **{
        f"{kind}, depth {d}": _nest(d, kind)
        for kind in ("lists", "objects", "inside a push")
        for d in (MAX_JSON_DEPTH + 1, 1_000, 100_000)
    },
    "lists, as deep as the body limit allows": _nest(500_000, "lists"),
    "bad UTF-8": b'{"ref": "\xff\xfe"}',
    "a 5000-digit number": b'{"ref": ' + b"9" * 5000 + b"}",
    "truncated": b'{"ref": "refs/heads/main", "after": ',
}


def _send(svc: Service, endpoint: str, body: bytes) -> tuple[int, str]:
    if endpoint == "github json":
        with svc.client(None) as c:
            r = c.post("/hooks/github", content=body, headers=github_headers(body))
    elif endpoint == "github form":
        form = b"payload=" + quote(body.decode("latin-1")).encode()
        headers = github_headers(form) | {"Content-Type": "application/x-www-form-urlencoded"}
        with svc.client(None) as c:
            r = c.post("/hooks/github", content=form, headers=headers)
    elif endpoint in ("jenkins json", "jenkins form"):
        kind = "application/json" if endpoint == "jenkins json" else "application/x-www-form-urlencoded"
        with svc.client(JENKINS_TOKEN) as c:
            r = c.post("/hooks/jenkins", content=body, headers={"Content-Type": kind})
    else:
        with svc.client(WRITE_TOKEN) as c:
            r = c.post("/runs", content=body, headers={"Content-Type": "application/json"})
    return r.status_code, r.json()["detail"]


ENDPOINTS = ["github json", "github form", "jenkins json", "jenkins form", "runs"]


def test_every_malformed_body_on_every_json_endpoint_is_a_one_line_400(
    start: Callable[..., Service], remote: Remote
) -> None:
    svc = start()
    runs, writes = len(svc.runs()), svc.writes()
    failures: list[str] = []
    for endpoint in ENDPOINTS:
        for name, body in BODIES.items():
            if endpoint == "github form" and len(body) > 300_000:
                continue  # percent-encoding triples it past the body limit: that is a 413, tested elsewhere
            code, detail = _send(svc, endpoint, body)
            if code != 400 or not isinstance(detail, str) or "\n" in detail or len(detail) > 200:
                failures.append(f"{endpoint} / {name}: {code} {detail!r:.200}")
    assert not failures, failures
    assert len(svc.runs()) == runs and svc.writes() == writes
    svc.assert_healthy()


def test_json_depth_is_measured_without_recursion() -> None:
    assert json_depth(1) == 0 and json_depth([]) == 1 and json_depth({"a": [{"b": 1}]}) == 3
    deep: list[object] = []
    for _ in range(50_000):
        deep = [deep]
    assert json_depth(deep) == MAX_JSON_DEPTH + 1  # stops as soon as the limit is passed
