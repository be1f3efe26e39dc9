"""The OpenStack venv installer: strict pins, a cache key that follows them, a venv reused only when checked."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("install_openstack", ROOT / "scripts" / "install_openstack.py")
assert spec and spec.loader
install_openstack = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install_openstack)


def test_the_release_has_a_constraints_file_pinning_every_requested_package() -> None:
    pins = install_openstack.read_pins(install_openstack.constraints_file(install_openstack.RELEASE))
    for package in install_openstack.PACKAGES:
        assert install_openstack.normalise(package) in pins, f"{package} is not pinned"
    assert pins["keystone"].split(".")[0] == "30"  # 2026.2; 2024.1's keystone 25 fails bootstrap with bcrypt 5


def test_a_malformed_pin_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "c.txt"
    bad.write_text("# comment\nkeystone==30.0.0\nnova>=34\n")
    with pytest.raises(install_openstack.InstallError, match=r"c\.txt:3: expected name==version"):
        install_openstack.read_pins(bad)


def test_cache_key_follows_release_and_constraints() -> None:
    key = install_openstack.cache_key("2026.2", b"keystone==30.0.0\n")
    assert key == install_openstack.cache_key("2026.2", b"keystone==30.0.0\n")
    assert key != install_openstack.cache_key("2026.2", b"keystone==30.0.1\n")
    assert key != install_openstack.cache_key("2026.1", b"keystone==30.0.0\n")


def test_an_unfinished_or_foreign_venv_is_not_reused(tmp_path: Path) -> None:
    assert install_openstack.check_venv(tmp_path, "k", {}) == "no install marker"
    (tmp_path / install_openstack.MARKER).write_text(json.dumps({"key": "other"}))
    assert "is not k" in str(install_openstack.check_venv(tmp_path, "k", {}))


def test_a_venv_whose_packages_drifted_is_rebuilt(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (venv / install_openstack.MARKER).write_text(json.dumps({"key": "k"}))
    reason = install_openstack.check_venv(venv, "k", {"keystone": "30.0.0"})
    assert reason is not None and "keystone missing" in reason


def test_unknown_release_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert install_openstack.main(["--release", "1999.1", "--dest", str(tmp_path), "--cache", str(tmp_path)]) == 2
    assert "no constraints file for release 1999.1" in capsys.readouterr().err
