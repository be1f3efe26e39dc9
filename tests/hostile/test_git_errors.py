"""Finding 7: a clone or fetch failure says what git said (its `fatal:` lines, the remote's credentials masked),
never `clone failed: '` (the lone quote GitPython's stderr ends with). Through the service: the run's error and
/readyz carry it, nothing is written, the service answers."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from deploy_manager.models.errors import SourceError
from deploy_manager.source.git import GitSource
from tests.hostile.conftest import Remote, Service
from tests.servicelib import WRITE_TOKEN


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_missing_repository_says_so(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as err:
        GitSource(f"file://{tmp_path}/nope", mirror_dir=tmp_path / "m")
    message = str(err.value)
    assert "clone failed: fatal:" in message and "does not appear to be a git repository" in message
    assert not message.endswith("'") and "\n" not in message


def test_an_unreachable_remote_says_why_without_its_credentials(tmp_path: Path) -> None:
    token = "tok-" + "s3cr3t" * 10
    with pytest.raises(SourceError) as err:
        GitSource(f"https://user:{token}@127.0.0.1:{_closed_port()}/x.git", mirror_dir=tmp_path / "m")
    message = str(err.value)
    assert "unable to access" in message and "Failed to connect" in message
    assert token not in message and "s3cr3t" not in message and message.startswith("https://***@127.0.0.1")


def test_a_fetch_failure_says_what_git_said(remote: Remote, tmp_path: Path) -> None:
    src = GitSource(f"file://{remote.root}", mirror_dir=tmp_path / "m")
    shutil.rmtree(remote.root)
    with pytest.raises(SourceError) as err:
        src.fetch()
    assert "fetch failed: fatal:" in str(err.value) and not str(err.value).endswith("'")


@pytest.mark.helm
@pytest.mark.slow
def test_the_service_records_git_s_words(start: Callable[..., Service], remote: Remote) -> None:
    svc = start()
    writes = svc.writes()
    shutil.rmtree(remote.root)  # the remote is gone: every fetch fails
    with svc.client(WRITE_TOKEN) as c:
        assert c.post("/runs").status_code == 202
    assert svc.queue.wait_idle(60)
    run = svc.runs()[0]
    assert run["status"] == "failed" and "fetch failed: fatal:" in run["error"], run["error"]
    with svc.client(None) as c:
        ready = c.get("/readyz")
        assert ready.status_code == 200 and "fetch failed: fatal:" in ready.json()["checks"]["git"]
        assert c.get("/healthz").status_code == 200
    assert svc.writes() == writes
