"""The pinned-tool installer: checksums are enforced and a re-run is a no-op."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("install_tools", ROOT / "scripts" / "install_tools.py")
assert spec and spec.loader
install_tools = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install_tools)


def test_installed_binaries_match_pins() -> None:
    bin_dir = ROOT / ".tools" / "bin"
    assert install_tools.already_installed(bin_dir)
    out = subprocess.run([str(bin_dir / "helm"), "version", "--short"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("v4.1.4")


def test_tampered_binary_is_refused(tmp_path: Path) -> None:
    (tmp_path / "helm").write_bytes(b"not helm")
    (tmp_path / "kubectl").write_bytes(b"not kubectl")
    with pytest.raises(install_tools.ChecksumMismatch, match="differs from the pinned"):
        install_tools.already_installed(tmp_path)


def test_rerun_is_noop_and_fast(tmp_path: Path) -> None:
    bin_dir = ROOT / ".tools" / "bin"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "install_tools.py"), "--dest", str(bin_dir)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0
    assert result.stdout == ""  # nothing reinstalled
