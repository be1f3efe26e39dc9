"""One JSON POST with retries (tenacity through `deploy_manager.retry`), shared by the notification clients.

A transport error (refused, reset, timeout), a 5xx or a 429 is temporary: retried with exponential backoff and
jitter, a `Retry-After` honoured up to the policy's cap. Any other 4xx is permanent (a wrong token, repository
or field): raised at once. Errors name the target and the HTTP status, never the URL or a header (a
notification URL and a token are secrets).
"""

from __future__ import annotations

from typing import Any

import httpx

from deploy_manager.models.errors import PermanentError, TemporaryError
from deploy_manager.retry import RetryPolicy, call_with_retries

# ~0.5 + 1 + 2 s of waiting: a short outage is bridged, a long one costs the background sender a few seconds.
DEFAULT_POLICY = RetryPolicy(attempts=4, initial=0.5, maximum=8.0)
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
USER_AGENT = "deploy-manager"


class DeliveryFailed(PermanentError):
    """The receiver refused the request (4xx other than 429): a retry cannot help."""


class DeliveryUnavailable(TemporaryError):
    """The receiver is down or overloaded (transport error, 5xx, 429)."""


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


def post_json(
    client: httpx.Client,
    target: str,
    url: str,
    body: dict[str, Any],
    *,
    headers: dict[str, str] | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> tuple[httpx.Response, tuple[str, ...]]:
    """POST `body` as JSON; returns the answer and the messages of the attempts that were retried."""

    def attempt() -> httpx.Response:
        try:
            response = client.post(url, json=body, headers={"User-Agent": USER_AGENT, **(headers or {})})
        except httpx.TransportError as exc:
            raise DeliveryUnavailable(f"{target}: {type(exc).__name__}") from exc
        code = response.status_code
        if code == 429 or code >= 500:
            raise DeliveryUnavailable(f"{target} answered {code}", delay=_retry_after(response))
        if code >= 400:
            raise DeliveryFailed(f"{target} answered {code}: {_message(response)}")
        return response

    return call_with_retries(attempt, policy)


def _message(response: httpx.Response) -> str:
    """GitHub's `{"message": ...}` (or the start of the body), one line."""
    try:
        data = response.json()
        text = str(data.get("message", "")) if isinstance(data, dict) else ""
    except ValueError:
        text = response.text
    return " ".join(text.split())[:200]
