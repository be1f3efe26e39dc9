"""`GET /plan?diff=true` on the real service (real Pipeline, helm, the sandbox): the objects a push changes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.api.test_integration import Remote, Running, remote, start  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.helm, pytest.mark.slow]


def test_plan_diff_over_http(start: Callable[..., Running], remote: Remote) -> None:  # noqa: F811
    svc = start()
    assert svc.queue.wait_idle(60)
    remote.change("keystone", 3)
    svc.queue.fetch_head()  # /plan plans the branch head in the mirror
    with svc.client() as c:
        plain = c.get("/plan").json()
        assert "diff" not in plain or plain["diff"] is None
        answer = c.get("/plan", params={"diff": "true"})
    assert answer.status_code == 200, answer.text
    data = answer.json()
    keystone = next(a for a in data["actions"] if a["component"] == "keystone")
    assert keystone["action"] == "upgrade" and keystone["values_paths"] == ["conf.keystone.workers"]
    assert {(o["kind"], o["change"]) for o in keystone["diff"]} == {("ConfigMap", "changed"), ("Deployment", "changed")}
    assert all(o["namespace"] == remote.namespace for o in keystone["diff"])
    assert {o["component"] for o in data["diff"]} == {"keystone"}
    rabbitmq = next(a for a in data["actions"] if a["component"] == "rabbitmq")
    assert rabbitmq["diff"] is None
