"""Fixtures for the HTTP tests: the real app on uvicorn (127.0.0.1, free port), a real values repo served
over `file://`, the real RunStore, and `StandInPipeline` in place of helm (unit tests of the HTTP layer)."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy_manager.api import create_app
from deploy_manager.config import Settings
from deploy_manager.service import RunQueue
from deploy_manager.store.sqlite import RunStore
from tests.corelib import commit, init_repo, write
from tests.notifylib import GitHubStatusServer, WebhookReceiver
from tests.servicelib import (
    TEST_SERVICE,
    LiveServer,
    StandInPipeline,
)


@dataclasses.dataclass
class Service:
    server: LiveServer
    pipeline: StandInPipeline
    store: RunStore
    queue: RunQueue
    repo: Path
    settings: Settings

    def commit(self, text: str) -> str:
        write(self.repo / "README", text)
        return commit(self.repo, text)

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
def values_repo(tmp_path: Path) -> Path:
    root = init_repo(tmp_path / "remote")
    write(root / "README", "v0\n")
    commit(root, "initial")
    return root


ServiceFactory = Callable[..., Service]


@pytest.fixture
def make_service(tmp_path: Path, values_repo: Path) -> Iterator[ServiceFactory]:
    with contextlib.ExitStack() as stack:
        count = 0

        def factory(gate: threading.Event | None = None, pipeline_kwargs: dict[str, Any] | None = None,
                    **overrides: Any) -> Service:
            nonlocal count
            count += 1
            state = tmp_path / f"state{count}"
            values: dict[str, Any] = {
                "repo_url": f"file://{values_repo}",
                "cluster": "dev",
                "state_dir": state,
                **TEST_SERVICE,
                "shutdown_grace_seconds": 30,
                "trigger_quiet_seconds": 0.2,
            }
            values.update(overrides)
            settings = Settings(**values)
            store = RunStore(settings.db_path)
            stack.callback(store.close)
            pipeline = StandInPipeline(store, gate=gate, **(pipeline_kwargs or {}))
            app = create_app(settings, pipeline=pipeline, store=store, lease=None, kube_ping=lambda: None)
            server = stack.enter_context(LiveServer(app))
            if gate is not None:
                stack.callback(gate.set)  # runs before the server stops: never leave the worker held open
            queue: RunQueue = app.state.dm.queue
            if gate is None:
                assert queue.wait_idle(20)  # the start-up run of the head is done
            return Service(server, pipeline, store, queue, values_repo, settings)

        yield factory


@pytest.fixture
def service(make_service: ServiceFactory) -> Service:
    return make_service()


@pytest.fixture
def github() -> Iterator[GitHubStatusServer]:
    """GitHub's statuses API as a strict local server (the notification tests)."""
    with GitHubStatusServer() as server:
        yield server


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    """A notification receiver on loopback (the notification tests)."""
    with WebhookReceiver() as server:
        yield server
