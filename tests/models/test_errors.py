"""The one error tree: every error is permanent or temporary, by what a retry can do."""

from __future__ import annotations

import pytest

from deploy_manager.bootstrap.engine import BootstrapStepFailed
from deploy_manager.models import errors as e


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, e.KubeRejected),
        (401, e.KubeRejected),
        (403, e.KubeRejected),
        (404, e.KubeNotFound),
        (409, e.KubeConflict),
        (422, e.KubeRejected),
        (408, e.KubeUnavailable),
        (429, e.KubeUnavailable),
        (500, e.KubeUnavailable),
        (503, e.KubeUnavailable),
        (None, e.KubeUnavailable),  # no answer at all
    ],
)
def test_kube_errors_are_classed_by_status(status: int | None, kind: type[e.KubeError]) -> None:
    assert e.kube_error_for(status) is kind


@pytest.mark.parametrize(
    ("error", "temporary"),
    [
        (e.KubeUnavailable("x"), True),
        (e.KubeConflict("x"), False),
        (e.KubeNotFound("x"), False),
        (e.KubeRejected("x"), False),
        (e.LeaseConflict("x"), True),
        (e.LeaseUnavailable("x"), True),
        (e.LeaseRejected("x"), False),
        (e.QueueStopping("x"), True),
        (e.ConfigError("bad", file="values/dev/cluster.yaml", line=3), False),
        (e.CycleError("a -> b -> a"), False),
        (e.ChartError("x"), False),
        (e.UnknownRevision("x"), False),
        (BootstrapStepFailed("x"), False),
    ],
)
def test_every_error_is_permanent_or_temporary(error: e.DeployManagerError, temporary: bool) -> None:
    assert isinstance(error, e.TemporaryError if temporary else e.PermanentError)
    assert not isinstance(error, e.PermanentError if temporary else e.TemporaryError)
    assert error.temporary is temporary


def test_a_conflict_is_not_an_unavailable_api() -> None:
    # A 409 is an answer: retrying the same write cannot succeed, so code that retries an unreachable API
    # (`except KubeUnavailable`) must not swallow it.
    assert not issubclass(e.KubeConflict, e.KubeUnavailable)
    assert not issubclass(e.KubeNotFound, e.KubeUnavailable)


def test_a_temporary_error_may_say_when_to_retry() -> None:
    assert e.TemporaryError("busy", delay=2.5).delay == 2.5
    assert e.KubeUnavailable("down").delay is None
