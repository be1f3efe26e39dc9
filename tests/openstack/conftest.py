"""The OpenStack tier: real services from the charts' renders (see cloud.py). `make test-openstack` runs it.

Every test module here carries the `openstack` marker, which the default run deselects (pyproject addopts); the
tier needs root, Debian's servers and the venv `make openstack` builds, and skips with the reason when
one is missing.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import cloud as c

# Per service: what the tier checked (printed at the end of the run, copied into the closing note).
RESULTS: dict[str, dict[str, str]] = {}


def record(service: str, check: str, outcome: str) -> None:
    RESULTS.setdefault(service, {})[check] = outcome


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RESULTS:
        return
    terminalreporter.section("OpenStack tier: per service")
    for service, checks in RESULTS.items():
        terminalreporter.write_line(f"{service}: " + "; ".join(f"{k} {v}" for k, v in checks.items()))


@pytest.fixture(scope="session")
def runnable() -> None:
    reason = c.why_not_runnable()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def venv_only() -> None:
    if not (c.VENV / "bin" / "oslo-config-validator").exists():
        pytest.skip(f"the OpenStack {c.RELEASE} venv is missing: run `make openstack` first")


@pytest.fixture(scope="session")
def cloud(runnable: None) -> Iterator[c.Cloud]:
    root = Path(tempfile.mkdtemp(prefix="dm-openstack-"))
    running = c.Cloud(root, ["rabbitmq", "memcached", *c.SERVICES, *c.DASHBOARD])
    try:
        running.prepare()
        running.start_infrastructure()
        # The broker's own `after` steps (rabbitmq-init: a vhost and user per service) before any service starts.
        for step in running.rendered["rabbitmq"].comp.bootstrap:
            run = running.run_step("rabbitmq", step)
            record("rabbitmq", f"step {step['name']}", "ok" if run.returncode == 0 else f"FAILED ({run.returncode})")
            assert run.returncode == 0, f"rabbitmq {step['name']} exited {run.returncode}:\n{run.output[-3000:]}"
            assert not [v for v in running.secret_values.values() if v in run.output], "a password in the step's log"
        yield running
    finally:
        running.stop()
        # DM_OPENSTACK_KEEP=1 keeps the logs, configs and databases of a run for a look afterwards.
        if os.environ.get("DM_OPENSTACK_KEEP"):
            print(f"\nOpenStack tier files kept in {root}")
        else:
            c.remove(root)
