"""The status page as a person sees it: headless Chromium loads `/` over loopback and renders it.

Needs Debian's `chromium` (`.ci/run` installs it when it runs as root); skipped where it is absent,
with the reason shown in pytest's summary.
"""

from __future__ import annotations

import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.api.conftest import Service
from tests.api.status_browser import CHROMIUM, render
from tests.servicelib import READ_TOKEN

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")


class _Tables(HTMLParser):
    """Collects the text of every table cell, grouped by table and row."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.tables and self.tables[-1]:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _render(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return render(url, profile, *extra, window=None)


def test_chromium_renders_the_runs_of_the_cluster(service: Service, tmp_path: Path) -> None:
    host = service.url.removeprefix("http://")
    result = _render(f"http://ops:{READ_TOKEN}@{host}/", tmp_path / "profile", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    page = _Tables()
    page.feed(result.stdout)
    assert "cluster dev" in result.stdout
    runs = page.tables[-1]
    assert runs[0][:4] == ["id", "trigger", "commit", "status"]
    deployed = service.queue.deployed_commit
    assert deployed is not None
    assert any(row[2] == deployed[:12] and row[3] == "succeeded" for row in runs[1:]), runs

    shot = tmp_path / "status.png"
    result = _render(f"http://ops:{READ_TOKEN}@{host}/", tmp_path / "profile2", f"--screenshot={shot}")
    assert result.returncode == 0 and shot.stat().st_size > 10_000  # a real picture, not a blank error page


def test_without_credentials_the_browser_gets_no_data(service: Service, tmp_path: Path) -> None:
    result = _render(f"{service.url}/", tmp_path / "profile", "--dump-dom")
    assert "Recent runs" not in result.stdout
