"""The status page while a run is going: its steps so far, and a page that refreshes itself until it is done."""

from __future__ import annotations

import threading

from deploy_manager.models.plan import Reason
from deploy_manager.models.run import StepRecord, StepStatus
from tests.api.conftest import ServiceFactory
from tests.servicelib import READ_TOKEN, WEBHOOK_SECRET

REFRESH = '<meta http-equiv="refresh"'


def test_a_running_run_shows_its_steps_so_far_and_the_page_refreshes_until_it_is_done(
    make_service: ServiceFactory,
) -> None:
    gate = threading.Event()
    svc = make_service(gate=gate)
    assert svc.pipeline.started.wait(20)  # the start-up run is held open
    run_id = svc.queue.running_run_id
    assert run_id is not None
    # What the pipeline records as each step finishes; a reason quoting a secret must not show it.
    reason = Reason("absent", f"no completed Job <b>{WEBHOOK_SECRET}</b>")
    step = StepRecord("keystone", "keystone", "openstack", "bootstrap:db-sync", StepStatus.succeeded, (reason,))
    svc.store.add_step(run_id, step)
    with svc.server.client(READ_TOKEN) as c:
        running = c.get("/").text
        gate.set()
        assert svc.queue.wait_idle(20)
        idle = c.get("/").text
    assert f"<h2>Run {run_id} in progress" in running and REFRESH in running
    assert "<td>keystone</td><td>bootstrap:db-sync</td><td>succeeded</td>" in running
    assert "no completed Job &lt;b&gt;***&lt;/b&gt;" in running and WEBHOOK_SECRET not in running
    assert "in progress" not in idle and REFRESH not in idle
