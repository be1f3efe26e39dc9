"""The commit-status client against a local server that checks what GitHub's statuses API checks."""

from __future__ import annotations

import socket

import httpx
import pytest

from deploy_manager.notify.github import CommitStatus, GitHubStatuses, status_context
from deploy_manager.notify.http import DeliveryFailed, DeliveryUnavailable
from deploy_manager.retry import RetryPolicy
from tests.notifylib import TOKEN, GitHubStatusServer

SHA = "0123456789abcdef0123456789abcdef01234567"
FAST = RetryPolicy(attempts=3, initial=0.01, maximum=0.05)


@pytest.fixture
def github() -> GitHubStatusServer:
    with GitHubStatusServer() as server:
        yield server


def client(server: GitHubStatusServer, token: str = TOKEN, repository: str = "cloud/deploy") -> GitHubStatuses:
    return GitHubStatuses(api_url=server.api_url, token=token, repository=repository, policy=FAST)


def status(state: str = "success", description: str = "3 components upgraded") -> CommitStatus:
    return CommitStatus(SHA, state, description, status_context("prod-east-1"), "https://dm.example.com/runs/4")  # type: ignore[arg-type]


@pytest.mark.parametrize("state", ["pending", "success", "failure", "error"])
def test_each_state_is_accepted(github: GitHubStatusServer, state: str) -> None:
    client(github).post(status(state))
    assert github.statuses(SHA) == [
        {
            "sha": SHA,
            "state": state,
            "description": "3 components upgraded",
            "context": "deploy-manager/prod-east-1",
            "target_url": "https://dm.example.com/runs/4",
        }
    ]


def test_a_trailing_slash_in_the_api_url_is_harmless(github: GitHubStatusServer) -> None:
    GitHubStatuses(api_url=github.api_url + "/", token=TOKEN, repository="cloud/deploy", policy=FAST).post(status())
    assert len(github.statuses()) == 1


def test_a_wrong_token_is_refused_at_once(github: GitHubStatusServer) -> None:
    with pytest.raises(DeliveryFailed, match="github answered 401: Bad credentials") as info:
        client(github, token="ghp_wrong").post(status())
    assert github.requests == 1  # a permanent error is not retried
    assert "ghp_wrong" not in str(info.value)


def test_an_unknown_repository_is_refused(github: GitHubStatusServer) -> None:
    with pytest.raises(DeliveryFailed, match="404"):
        client(github, repository="cloud/other").post(status())


def test_500_is_retried_then_given_up(github: GitHubStatusServer) -> None:
    github.fail_with = 500
    with pytest.raises(DeliveryUnavailable, match="github answered 500"):
        client(github).post(status())
    assert github.requests == FAST.attempts


def test_a_500_that_clears_is_bridged_by_the_retry(github: GitHubStatusServer) -> None:
    github.fail_with = 502
    statuses = client(github)
    real_post = statuses.client.post

    def post_then_recover(*args: object, **kwargs: object) -> httpx.Response:
        answer = real_post(*args, **kwargs)  # type: ignore[arg-type]
        github.fail_with = None  # the server is back for the next attempt
        return answer

    statuses.client.post = post_then_recover  # type: ignore[method-assign]
    retried = statuses.post(status())
    assert retried == ("github answered 502",) and len(github.statuses()) == 1


def test_an_api_that_is_down_is_retried_then_given_up() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    statuses = GitHubStatuses(api_url=f"http://127.0.0.1:{port}", token=TOKEN, repository="a/b", policy=FAST)
    with pytest.raises(DeliveryUnavailable, match="github: ConnectError"):
        statuses.post(status())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sha": "abc"}, "not a full commit id"),
        ({"state": "ok"}, "is not one of pending, success, failure, error"),
        ({"description": "x" * 141}, "description over 140"),
    ],
)
def test_what_github_would_refuse_is_refused_before_sending(kwargs: dict[str, str], message: str) -> None:
    fields = {"sha": SHA, "state": "success", "description": "ok", "context": "deploy-manager/dev"} | kwargs
    with pytest.raises(ValueError, match=message):
        CommitStatus(**fields)  # type: ignore[arg-type]


def test_the_server_refuses_what_github_refuses(github: GitHubStatusServer) -> None:
    """The stand-in is strict where GitHub is (so the client tests above prove something)."""
    with httpx.Client(base_url=github.api_url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        url = f"/repos/cloud/deploy/statuses/{SHA}"
        assert c.post(url, json={"state": "ok"}).status_code == 422
        assert c.post(url, json={"state": "success", "description": "x" * 141}).status_code == 422
        assert c.post(url, json={"state": "success", "target_url": "javascript:x"}).status_code == 422
        assert c.post("/repos/cloud/deploy/statuses/abc", json={"state": "success"}).status_code == 422
        assert c.post(url, json={"state": "success"}, headers={"Authorization": "Bearer x"}).status_code == 401
    assert github.statuses() == []
