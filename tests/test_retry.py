"""Retry policies (pure) and the retry helper: which errors are retried, how long to wait, the caps."""

from __future__ import annotations

import pytest

from deploy_manager.models.errors import KubeRejected, KubeUnavailable
from deploy_manager.retry import (
    RetryPolicy,
    RunRetryPolicy,
    call_with_retries,
    is_transient,
    next_run_retry,
    retry_after,
)


@pytest.mark.parametrize(
    ("text", "transient"),
    [
        ("Error: UPGRADE FAILED: create: failed to create: sandbox: injected 500 for create secrets", True),
        ("Error: UPGRADE FAILED: the server is currently unable to handle the request", True),
        ("Error: Internal error occurred: etcdserver: request timed out", True),
        ("Error: the server has received too many requests and has asked us to try again later", True),
        ("Error: read tcp 10.0.0.1:443: read: connection reset by peer", True),
        ("Error: dial tcp 10.0.0.1:6443: i/o timeout", True),
        ("Error: execution error at (nova/templates/x.yaml:3:4): nope", False),
        ("Error: values don't meet the specifications of the schema(s): - at '/replicas': got string", False),
        ('Error: Deployment.apps "x" is invalid: spec.selector: field is immutable', False),
        ('Error: secrets is forbidden: User "x" cannot create resource "secrets"', False),
        ("Error: context deadline exceeded", False),  # helm --wait: the workload, not the API
    ],
)
def test_is_transient(text: str, transient: bool) -> None:
    assert is_transient(text) is transient


def test_retry_after() -> None:
    assert retry_after("429 Too Many Requests, Retry-After: 7") == 7.0
    assert retry_after("nothing here") is None


def test_temporary_errors_are_retried_and_reported() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise KubeUnavailable("listing: answered 503", delay=0.01)  # Retry-After honoured (tiny here)
        return "ok"

    result, retried = call_with_retries(flaky, RetryPolicy(attempts=3, initial=0.01, maximum=0.05))
    assert result == "ok" and len(calls) == 3
    assert retried == ("listing: answered 503", "listing: answered 503")


def test_permanent_errors_are_not_retried() -> None:
    calls: list[int] = []

    def forbidden() -> None:
        calls.append(1)
        raise KubeRejected("403 Forbidden")

    with pytest.raises(KubeRejected):
        call_with_retries(forbidden, RetryPolicy(attempts=5, initial=0.01))
    assert len(calls) == 1


def test_the_last_error_carries_the_retries() -> None:
    def down() -> None:
        raise KubeUnavailable("unreachable")

    with pytest.raises(KubeUnavailable) as info:
        call_with_retries(down, RetryPolicy(attempts=2, initial=0.01, maximum=0.01))
    assert info.value.retried == ("unreachable",)  # type: ignore[attr-defined]


P = RunRetryPolicy(initial=30, maximum=600, attempts=5, failed_interval=1800, failed_max=3)


@pytest.mark.parametrize(
    ("temporary", "fast", "slow", "jitter", "expected"),
    [
        (True, 0, 0, 0.0, (30.0, "temporary")),
        (True, 1, 0, 0.0, (60.0, "temporary")),
        (True, 4, 0, 0.0, (480.0, "temporary")),
        (True, 0, 0, 0.5, (31.5, "temporary")),  # jitter: up to 10% more
        (True, 5, 0, 0.0, (1800.0, "failed")),  # fast retries used up: the slow interval
        (False, 0, 0, 0.0, (1800.0, "failed")),  # a permanent failure (or remediated): only the slow retry
        (False, 0, 2, 0.0, (1800.0, "failed")),
        (False, 0, 3, 0.0, None),  # capped
        (True, 5, 3, 0.0, None),
    ],
)
def test_next_run_retry(
    temporary: bool, fast: int, slow: int, jitter: float, expected: tuple[float, str] | None
) -> None:
    assert next_run_retry(P, temporary=temporary, fast_done=fast, slow_done=slow, jitter=jitter) == expected


def test_backoff_is_capped_and_slow_retries_can_be_off() -> None:
    policy = RunRetryPolicy(initial=30, maximum=100, attempts=10, failed_interval=0)
    assert next_run_retry(policy, temporary=True, fast_done=6, slow_done=0) == (100.0, "temporary")
    assert next_run_retry(policy, temporary=False, fast_done=0, slow_done=0) is None
