"""`deploy-manager sandbox`: one ready line, a working kubeconfig, clean exit on SIGTERM/SIGINT."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from kubesim.testing import KubeCLI

# the console script installed next to this interpreter (``pip install -e .``)
DEPLOY_MANAGER = str(Path(sys.executable).parent / "deploy-manager")
READY = re.compile(r"^sandbox ready (http://127\.0\.0\.1:\d+) kubeconfig=(\S+)$")
APP = str(Path(__file__).parent / "charts" / "app")


def start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], str, Path]:
    proc = subprocess.Popen(
        [DEPLOY_MANAGER, "sandbox", "--kubeconfig-out", str(tmp_path / "kc"), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    match = READY.match(line)
    assert match, f"unexpected first line {line!r}"
    return proc, match.group(1), Path(match.group(2))


@pytest.mark.helm
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_helm_until_signalled(tmp_path: Path, helm_bin: Path, kubectl_bin: Path, sig: int) -> None:
    proc, url, kubeconfig = start(tmp_path, "--state-file", str(tmp_path / "state.json"))
    try:
        assert kubeconfig == tmp_path / "kc"
        assert yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"] == url
        cli = KubeCLI(helm_bin, kubectl_bin, kubeconfig, tmp_path / "home")
        begin = time.monotonic()
        cli.helm("install", "demo", APP, "-n", "default", "--wait")
        assert time.monotonic() - begin < 5
    finally:
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert out == ""  # exactly one line, already read
    assert "demo" in (tmp_path / "state.json").read_text()


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    proc, url, _ = start(tmp_path)
    try:
        port = url.rsplit(":", 1)[1]
        second = subprocess.run([DEPLOY_MANAGER, "sandbox", "--port", port],
                                capture_output=True, text=True, timeout=20)
        assert second.returncode != 0 and "Address already in use" in second.stderr
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
