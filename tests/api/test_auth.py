"""Token auth and webhook signatures: hashing, roles, header parsing (unit), and 401/403 over HTTP."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr

from deploy_manager.api.auth import (
    Role,
    TokenAuth,
    basic_password,
    bearer_token,
    github_signature,
    verify_github_signature,
)
from tests.api.conftest import Service, ServiceFactory
from tests.servicelib import READ_TOKEN, WRITE_TOKEN


def test_roles_and_hashing() -> None:
    auth = TokenAuth([SecretStr("reader-aaaa")], [SecretStr("writer-bbbb")])
    assert auth.role("reader-aaaa") is Role.read
    assert auth.role("writer-bbbb") is Role.write
    assert auth.role("nobody") is None and auth.role("") is None
    # Only digests are kept: the token text is nowhere in the object.
    assert "reader-aaaa" not in repr(vars(auth)) and "writer-bbbb" not in repr(vars(auth))


def test_no_tokens_means_closed() -> None:
    auth = TokenAuth([], [])
    assert not auth.configured and not auth.writable and auth.role("anything") is None
    read_only = TokenAuth([SecretStr("reader-aaaa")], [])
    assert read_only.configured and not read_only.writable


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer", None), (None, None), ("", None)],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_basic_password() -> None:
    assert basic_password("Basic " + base64.b64encode(b"me:tok-1").decode()) == "tok-1"
    assert basic_password("Basic !!!") is None
    assert basic_password("Basic " + base64.b64encode(b"no-colon").decode()) is None


def test_github_signature_matches_githubs_documented_example() -> None:
    # From GitHub's "Validating webhook deliveries" docs.
    secret, body = "It's a Secret to Everybody", b"Hello, World!"
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert github_signature(secret, body) == expected
    assert verify_github_signature(secret, body, expected)
    assert not verify_github_signature(secret, body + b"!", expected)
    assert not verify_github_signature(secret, body, expected.upper())
    assert not verify_github_signature(secret, body, None)


READ_PATHS = ["/releases", "/runs", "/runs/1", "/plan", "/metrics", "/smoke"]


@pytest.mark.parametrize("path", READ_PATHS)
def test_read_endpoints_need_a_token(service: Service, path: str) -> None:
    with service.server.client() as c:
        none = c.get(path)
        wrong = c.get(path, headers={"Authorization": "Bearer not-a-token"})
    for r in (none, wrong):
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer" and r.json()["detail"]


@pytest.mark.parametrize("path", READ_PATHS)
@pytest.mark.parametrize("token", [READ_TOKEN, WRITE_TOKEN])
def test_read_and_write_tokens_can_read(service: Service, path: str, token: str) -> None:
    with service.server.client(token) as c:
        assert c.get(path).status_code == 200


def test_a_read_token_on_a_write_endpoint_is_403(service: Service) -> None:
    with service.server.client(READ_TOKEN) as c:
        r = c.post("/runs")
    assert r.status_code == 403 and "write" in r.json()["detail"]
    with service.server.client() as c:
        assert c.post("/runs").status_code == 401
    assert len(service.store.list_runs(cluster="dev")) == 1


def test_health_and_readiness_need_no_token(service: Service) -> None:
    with service.server.client() as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 200


def test_without_configured_tokens_the_api_is_disabled(make_service: ServiceFactory) -> None:
    svc = make_service(read_tokens="", write_tokens="")
    with svc.server.client("anything-at-all") as c:
        answers = {path: c.get(path) for path in [*READ_PATHS, "/"]}
        post = c.post("/runs")
        health = c.get("/healthz")
    for path, r in answers.items():
        assert r.status_code == 503, path
        assert "is disabled: neither DM_READ_TOKENS nor DM_WRITE_TOKENS is set" in r.json()["detail"]
    assert answers["/runs/1"].json()["detail"].startswith("GET /runs/{run_id} is disabled")
    assert post.status_code == 503 and post.json() == {"detail": "POST /runs is disabled: DM_WRITE_TOKENS is not set"}
    assert health.status_code == 200
    assert len(svc.store.list_runs(cluster="dev")) == 1  # only the start-up run


def test_without_write_tokens_post_runs_is_disabled_and_reads_still_work(make_service: ServiceFactory) -> None:
    svc = make_service(write_tokens="")
    with svc.server.client(READ_TOKEN) as c:
        post = c.post("/runs")
        read = c.get("/runs")
    with svc.server.client() as c:
        anonymous = c.get("/runs")
    assert post.status_code == 503 and post.json() == {"detail": "POST /runs is disabled: DM_WRITE_TOKENS is not set"}
    assert read.status_code == 200 and anonymous.status_code == 401
    assert len(svc.store.list_runs(cluster="dev")) == 1
