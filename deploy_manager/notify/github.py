"""Commit statuses on GitHub / GitHub Enterprise: `POST {api}/repos/{owner}/{repo}/statuses/{sha}`.

`GitHubStatuses.post(status)` sends one status (state pending|success|failure|error, a description of at most
140 characters, `target_url`, context `deploy-manager/<cluster>`) with the token as `Authorization: Bearer`,
retrying temporary failures (`notify.http`). It decides nothing: `notify.describe` says what to post.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

from deploy_manager.notify.describe import COMMIT_STATES, DESCRIPTION_LIMIT, CommitState
from deploy_manager.notify.http import DEFAULT_POLICY, TIMEOUT, post_json
from deploy_manager.retry import RetryPolicy

TARGET = "github"
API_VERSION = "2022-11-28"
CONTEXT_PREFIX = "deploy-manager/"
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")  # sha1 or sha256 object names


def status_context(cluster: str) -> str:
    return f"{CONTEXT_PREFIX}{cluster}"


@dataclass(frozen=True)
class CommitStatus:
    sha: str
    state: CommitState
    description: str
    context: str
    target_url: str | None = None

    def __post_init__(self) -> None:
        if not _SHA.match(self.sha):
            raise ValueError(f"not a full commit id: {self.sha[:64]!r}")
        if self.state not in COMMIT_STATES:
            raise ValueError(f"commit status state {self.state!r} is not one of {', '.join(COMMIT_STATES)}")
        if len(self.description) > DESCRIPTION_LIMIT:
            raise ValueError(f"description over {DESCRIPTION_LIMIT} characters")

    def body(self) -> dict[str, str]:
        out = {"state": self.state, "description": self.description, "context": self.context}
        if self.target_url:
            out["target_url"] = self.target_url
        return out


class GitHubStatuses:
    """The statuses API of one repository."""

    def __init__(
        self,
        *,
        api_url: str,
        token: str,
        repository: str,
        client: httpx.Client | None = None,
        policy: RetryPolicy = DEFAULT_POLICY,
    ) -> None:
        owner, sep, name = repository.partition("/")
        if not (owner and sep and name) or "/" in name:
            raise ValueError("the repository must be owner/name")
        self.base = api_url.rstrip("/")
        self.repository = repository
        self._token = token
        self.client = client or httpx.Client(timeout=TIMEOUT, follow_redirects=False)
        self.policy = policy

    def url(self, sha: str) -> str:
        return f"{self.base}/repos/{self.repository}/statuses/{sha}"

    def post(self, status: CommitStatus) -> tuple[str, ...]:
        """Send `status`; returns the messages of retried attempts. Raises `DeliveryFailed`/`DeliveryUnavailable`."""
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
        }
        url = self.url(status.sha)
        _, retried = post_json(self.client, TARGET, url, status.body(), headers=headers, policy=self.policy)
        return retried

    def close(self) -> None:
        self.client.close()
