"""Headless Chromium (Debian's `chromium`, never a downloaded browser) for the page tests: `render(url, profile,
*flags)` runs it once (`--dump-dom` prints the DOM after load, `--screenshot=PATH` saves a PNG)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# No sandbox (root in CI), no GPU, and no background traffic: this machine reaches only loopback.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def render(url: str, profile: Path, *extra: str, window: str | None = "1200,900") -> subprocess.CompletedProcess[str]:
    """`window` None: Chromium's own default size."""
    assert CHROMIUM is not None
    size = [f"--window-size={window}"] if window is not None else []
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *size, *extra, url],
        capture_output=True,
        text=True,
        timeout=90,
    )
