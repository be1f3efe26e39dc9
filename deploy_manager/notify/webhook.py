"""The run-end notification: one JSON POST to `DM_NOTIFY_URL` (a Slack incoming webhook takes it as is: it
reads `text`; other receivers read the fields). The body comes from `notify.describe.payload`."""

from __future__ import annotations

from typing import Any

import httpx

from deploy_manager.notify.http import DEFAULT_POLICY, TIMEOUT, post_json
from deploy_manager.retry import RetryPolicy

TARGET = "webhook"


class WebhookNotifier:
    def __init__(self, url: str, *, client: httpx.Client | None = None, policy: RetryPolicy = DEFAULT_POLICY) -> None:
        self._url = url  # a secret: never logged (errors name only the target)
        self.client = client or httpx.Client(timeout=TIMEOUT, follow_redirects=False)
        self.policy = policy

    def post(self, body: dict[str, Any]) -> tuple[str, ...]:
        _, retried = post_json(self.client, TARGET, self._url, body, policy=self.policy)
        return retried

    def close(self) -> None:
        self.client.close()
