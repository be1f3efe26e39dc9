"""Retries of temporary errors (tenacity): exponential backoff with jitter, honouring a server's Retry-After.

Only `TemporaryError`s are retried (an overloaded or unreachable API: 5xx, 429, timeouts, connection
resets); a `PermanentError` (render, schema, immutable field, forbidden, not found) is raised at once.
The messages of the attempts that were retried are returned with the result (or set on the final error
as `retried`), so a step can record every retry.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from deploy_manager.models.errors import TemporaryError

T = TypeVar("T")

# What Kubernetes (and client-go, as helm prints it) says for an answer a retry may fix. The status codes are
# matched as words of the error line: the API's own messages do not always spell out the reason.
_TRANSIENT = re.compile(
    r"\b(?:500|502|503|504|429)\b"
    r"|internal error occurred|the server is currently unable|too many requests|an error on the server"
    r"|has asked us to try again later|connection reset|connection refused|broken pipe|i/o timeout"
    r"|tls handshake timeout|unexpected eof|http2: client connection lost|etcdserver: request timed out"
    r"|the server was unable to return a response",
    re.IGNORECASE,
)
_RETRY_AFTER = re.compile(r"retry[- ]after\D{0,3}(\d+(?:\.\d+)?)", re.IGNORECASE)


def is_transient(text: str) -> bool:
    """Does this error text describe an answer a retry may fix (5xx, 429, a timeout or a dropped connection)?"""
    return bool(_TRANSIENT.search(text))


def retry_after(text: str) -> float | None:
    """A Retry-After (seconds) named in an error text, if any."""
    m = _RETRY_AFTER.search(text)
    return float(m.group(1)) if m else None


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a temporary error is retried within one call."""

    attempts: int = 3  # in all, the first included
    initial: float = 1.0  # seconds before the first retry, doubling each time (plus jitter)
    maximum: float = 10.0  # cap of one wait (a Retry-After above it is capped too)

    def wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        hinted = getattr(exc, "delay", None)
        if isinstance(hinted, int | float) and hinted > 0:
            return float(min(hinted, self.maximum))
        backoff = wait_exponential(multiplier=self.initial, max=self.maximum) + wait_random(0, self.initial)
        return float(min(self.maximum, backoff(state)))


NO_RETRY = RetryPolicy(attempts=1)


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    retry_on: Callable[[BaseException], bool] = lambda exc: isinstance(exc, TemporaryError),
) -> tuple[T, tuple[str, ...]]:
    """`fn()` retried on temporary errors; returns its result and the messages of the failed attempts.
    The final error, if any, carries them as `retried` (a tuple of messages)."""
    retried: list[str] = []

    def note(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        retried.append(str(exc))

    retrying = Retrying(
        stop=stop_after_attempt(max(1, policy.attempts)),
        wait=policy.wait,
        retry=retry_if_exception(retry_on),
        before_sleep=note,
        reraise=True,
    )
    try:
        result = retrying(fn)
    except Exception as exc:
        exc.retried = tuple(retried)  # type: ignore[attr-defined]
        raise
    return result, tuple(retried)


# -- the service's retries of whole runs (DM_RETRY_*) -------------------------------------------------
@dataclass(frozen=True)
class RunRetryPolicy:
    """When the service runs a failed commit again without a new push (see docs/service.md)."""

    initial: float = 30.0  # first re-queue after a temporary failure; doubles each time
    maximum: float = 600.0  # cap of one backoff wait
    attempts: int = 5  # re-queues of one commit after temporary failures
    failed_interval: float = 1800.0  # slow retry of a failed/remediated cluster; 0: never
    failed_max: int = 3  # slow retries of one commit


def next_run_retry(
    policy: RunRetryPolicy, *, temporary: bool, fast_done: int, slow_done: int, jitter: float = 0.0
) -> tuple[float, str] | None:
    """(delay in seconds, reason) of the next retry of a failed run of one commit, or None when the caps are
    reached (pure). `fast_done`/`slow_done`: retries of this commit so far; `jitter` in [0, 1) adds up to
    10% of the backoff, so instances that failed together do not retry together."""
    if temporary and fast_done < policy.attempts:
        backoff = min(policy.maximum, policy.initial * 2**fast_done)
        return backoff * (1 + 0.1 * jitter), "temporary"
    if policy.failed_interval > 0 and slow_done < policy.failed_max:
        return policy.failed_interval, "failed"
    return None
