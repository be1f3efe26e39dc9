"""GET /plan?rev=: what a run would do; bad revisions are 422."""

from __future__ import annotations

import pytest

from tests.api.conftest import Service
from tests.corelib import git
from tests.servicelib import READ_TOKEN


def test_plan_of_the_branch_head_and_of_a_revision(service: Service) -> None:
    old = git(service.repo, "rev-parse", "HEAD")
    new = service.commit("v1")
    service.queue.fetch_head()
    with service.server.client(READ_TOKEN) as c:
        head = c.get("/plan").json()
        pinned = c.get("/plan", params={"rev": old[:12]}).json()
    assert head["commit"] == new and head["rev"] == "main" and head["cluster"] == "dev"
    assert [(a["component"], a["action"]) for a in head["actions"]] == [("app", "upgrade")]
    (action,) = head["actions"]
    assert action["reasons"] and all(isinstance(r, str) for r in action["reasons"])
    assert [d["message"] for d in action["reason_details"]] == action["reasons"]
    assert pinned["commit"] == old and [a["action"] for a in pinned["actions"]] == ["none"]


@pytest.mark.parametrize(("rev", "status"), [("no-such-branch", 422), ("--output=/etc/x", 422), ("a b", 422)])
def test_bad_revisions_are_422(service: Service, rev: str, status: int) -> None:
    with service.server.client(READ_TOKEN) as c:
        r = c.get("/plan", params={"rev": rev})
    assert r.status_code == status and r.json()["detail"]
