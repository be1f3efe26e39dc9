"""Findings 5 and 6: a push naming a commit the repository does not have is refused like Jenkins' (422, no
run); a captured delivery replayed (same `X-GitHub-Delivery`) is answered 200 `duplicate` and starts nothing;
a push or Jenkins trigger of a commit that is an ancestor of the deployed one is a no-op (202 `ignored`) unless
the branch itself was rewound to it. Nothing is written to the cluster by any of them, and the service stays
healthy."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from deploy_manager.api.deps import RecentDeliveries
from tests.corelib import git, write_values
from tests.hostile.conftest import Remote, Service
from tests.servicelib import JENKINS_TOKEN

pytestmark = [pytest.mark.helm, pytest.mark.slow]


def _change(remote: Remote, workers: int) -> str:
    write_values(remote.root, "dev", "app", {"replicas": 1, "conf": {"app": {"workers": workers}}})
    return remote.commit(f"workers={workers}")


def test_an_unknown_commit_is_422_on_both_hooks_and_starts_nothing(
    start: Callable[..., Service], remote: Remote
) -> None:
    svc = start()
    runs, writes = len(svc.runs()), svc.writes()
    for sha in ("0123456789abcdef0123456789abcdef01234567", "f" * 39 + "e"):
        answer = svc.push(sha)
        assert answer.status_code == 422 and sha in answer.json()["detail"], answer.text
        with svc.client(JENKINS_TOKEN) as c:
            assert c.post("/hooks/jenkins", json={"commit": sha}).status_code == 422
    assert len(svc.runs()) == runs and svc.writes() == writes
    svc.assert_healthy()


def test_a_replayed_delivery_is_a_duplicate_and_starts_nothing(start: Callable[..., Service], remote: Remote) -> None:
    svc = start()
    sha = _change(remote, 1)
    delivery = str(uuid.uuid4())
    first = svc.push(sha, delivery=delivery)
    assert first.status_code == 202 and first.json()["status"] == "queued"
    assert svc.queue.wait_idle(60)
    runs, writes = len(svc.runs()), svc.writes()
    for _ in range(3):  # the captured request, sent again as it was
        again = svc.push(sha, delivery=delivery)
        assert again.status_code == 200 and again.json() == {
            "run_id": None,
            "status": "duplicate",
            "reason": f"delivery {delivery} was already received",
        }
    # A newer commit replayed under an old delivery id is a replay too: the id is what GitHub signs once.
    newer = _change(remote, 2)
    assert svc.push(newer, delivery=delivery).json()["status"] == "duplicate"
    assert len(svc.runs()) == runs and svc.writes() == writes
    svc.assert_healthy()


def test_a_refused_delivery_can_be_delivered_again(start: Callable[..., Service], remote: Remote) -> None:
    """GitHub's "Redeliver" keeps the id: a delivery we refused (here: 422) must not be remembered."""
    svc = start()
    delivery = str(uuid.uuid4())
    assert svc.push("0123456789abcdef0123456789abcdef01234567", delivery=delivery).status_code == 422
    sha = _change(remote, 3)
    answer = svc.push(sha, delivery=delivery)
    assert answer.status_code == 202 and answer.json()["status"] == "queued"
    assert svc.queue.wait_idle(60)
    svc.assert_healthy()


def test_an_ancestor_of_the_deployed_commit_is_a_no_op_unless_the_branch_was_rewound(
    start: Callable[..., Service], remote: Remote
) -> None:
    svc = start()
    old = remote.head
    new = _change(remote, 4)
    assert svc.push(new).json()["status"] == "queued"
    assert svc.queue.wait_idle(60)
    assert svc.queue.deployed_commit == new
    runs, writes = len(svc.runs()), svc.writes()
    # An old push, replayed with a fresh delivery id (or a Jenkins trigger of an old commit): nothing happens.
    answer = svc.push(old)
    assert answer.status_code == 202 and answer.json()["status"] == "ignored" and answer.json()["run_id"] is None
    assert "ancestor of the deployed commit" in answer.json()["reason"]
    with svc.client(JENKINS_TOKEN) as c:
        assert c.post("/hooks/jenkins", json={"commit": old}).json()["status"] == "ignored"
    assert len(svc.runs()) == runs and svc.writes() == writes
    # A rollback by force-push: the branch now points at the old commit, so it is deployed.
    git(remote.root, "reset", "-q", "--hard", old)
    answer = svc.push(old)
    assert answer.status_code == 202 and answer.json()["status"] == "queued", answer.text
    assert svc.queue.wait_idle(60)
    assert svc.runs()[0]["status"] == "succeeded" and svc.queue.deployed_commit == old
    svc.assert_healthy()


def test_the_record_of_deliveries_is_bounded() -> None:
    seen = RecentDeliveries(size=3)
    assert all(seen.claim(d) for d in "abc")
    assert not seen.claim("a")  # a replay (and now the newest)
    assert seen.claim("d")  # evicts the oldest: b
    assert seen.claim("b") and not seen.claim("d")
    seen.release("d")
    assert seen.claim("d")
