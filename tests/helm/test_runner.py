"""HelmRunner with the real helm binary (client-side commands) and small wrapper scripts for timing."""

from __future__ import annotations

import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from deploy_manager.helm.runner import (
    ChartRenderError,
    HelmEnded,
    HelmError,
    HelmNotFound,
    HelmRunner,
    HelmTimeout,
    redact,
    tail,
)
from tests.corelib import CONFIGMAP_TEMPLATE, DEPLOYMENT_TEMPLATE, write, write_chart

HELM = str(Path(__file__).resolve().parents[2] / ".tools" / "bin" / "helm")

# A ConfigMap and a Deployment named `web`, so a fault can keep the rollout unready.
WEB = CONFIGMAP_TEMPLATE + DEPLOYMENT_TEMPLATE.replace("{{ .Release.Name }}-api", "web")
FAILING = '{{ fail (printf "bad password %s" .Values.db.password) }}\n'


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "tmp"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


def test_template_renders_and_values_file_is_removed(tmp_path: Path, private_tmp: Path) -> None:
    chart = write_chart(tmp_path, "c")
    out = HelmRunner(HELM).template(release="r1", namespace="ns", chart=str(chart), values={"a": {"b": 1}})
    assert "name: r1-conf" in out and '{\\"a\\":{\\"b\\":1}}' in out
    assert list(private_tmp.iterdir()) == []


def test_render_failure_is_named_and_secrets_redacted(tmp_path: Path, private_tmp: Path) -> None:
    chart = write_chart(tmp_path, "c", template=FAILING)
    with pytest.raises(ChartRenderError) as exc:
        HelmRunner(HELM).template(
            release="r1",
            namespace="ns",
            chart=str(chart),
            values={"db": {"password": "hunter22"}},
            secrets=["hunter22"],
        )
    assert "chart does not render" in str(exc.value) and "bad password ***" in str(exc.value)
    assert "hunter22" not in str(exc.value) + exc.value.output_tail
    assert exc.value.exit_code == 1
    assert list(private_tmp.iterdir()) == []


def test_values_file_is_private_and_passed_by_path(tmp_path: Path) -> None:
    log = tmp_path / "log"
    fake = write(
        tmp_path / "helm",
        f"""#!/bin/sh
while [ $# -gt 0 ]; do
  if [ "$1" = "--values" ]; then stat -c %a "$2" > {log}; cat "$2" >> {log}; fi
  shift
done
echo '{{"name": "r", "version": 7, "info": {{"status": "deployed"}}}}'
""",
    )
    fake.chmod(0o755)
    res = HelmRunner(str(fake)).upgrade_install(
        release="r",
        namespace="ns",
        chart="c",
        values={"db": {"password": "p4ss"}},
        labels={"a/b": "1"},
        timeout=30,
    )
    mode, content = log.read_text().split("\n", 1)
    assert mode == "600" and '"p4ss"' in content
    assert res.revision == 7 and res.status == "deployed"
    assert "--labels" in res.args and "a/b=1" in res.args and "--wait=watcher" in res.args
    assert "p4ss" not in " ".join(res.args)


def test_subprocess_timeout_is_longer_than_helm_timeout(tmp_path: Path) -> None:
    fake = write(tmp_path / "helm", '#!/bin/sh\nfor a in "$@"; do [ "$a" = status ] && exit 1; done\nsleep 30\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    runner = HelmRunner(str(fake), timeout_margin=1)
    with pytest.raises(HelmTimeout, match=r"helm upgrade r did not finish within 2s"):
        runner.upgrade_install(release="r", namespace="ns", chart="c", values={}, labels={}, timeout=1)


def test_missing_binary() -> None:
    runner = HelmRunner("/nonexistent/helm")
    with pytest.raises(HelmNotFound, match="helm binary not found: /nonexistent/helm"):
        runner.template(release="r", namespace="n", chart="c", values={})
    with pytest.raises(HelmNotFound):
        runner.upgrade_install(release="r", namespace="n", chart="c", values={}, labels={}, timeout=5)


def test_unreachable_cluster_is_a_helm_error(tmp_path: Path) -> None:
    kubeconfig = write(
        tmp_path / "kc",
        """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:1"}}]
users: [{name: u, user: {}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
""",
    )
    chart = write_chart(tmp_path, "c")
    runner = HelmRunner(HELM, kubeconfig=kubeconfig)
    with pytest.raises(HelmError) as exc:
        runner.upgrade_install(release="r", namespace="ns", chart=str(chart), values={}, labels={}, timeout=5)
    assert "helm upgrade r failed (exit 1)" in str(exc.value) and "127.0.0.1:1" in str(exc.value)
    assert not isinstance(exc.value, HelmTimeout)


def test_redact_and_tail() -> None:
    text = 'user: admin\npassword: s3cr3t\nsome_token=abc123\napi_key: "k"\nvalue hunter22 here\n'
    out = redact(text, ["hunter22"])
    assert "s3cr3t" not in out and "abc123" not in out and "hunter22" not in out and "admin" in out
    assert tail("\n".join(str(i) for i in range(100)), 50).splitlines() == [str(i) for i in range(50, 100)]


@pytest.mark.kubesim_only("holds helm in its wait with the sandbox's never-ready fault")
@pytest.mark.helm
def test_ending_helm_in_its_wait_leaves_the_release_failed_not_pending(tmp_path: Path, sandbox: Any) -> None:
    """Why `end` sends SIGTERM: helm 4 cancels its wait and records the release `failed`, which a later
    upgrade or rollback recovers; SIGKILL (below) leaves it `pending-upgrade`, locked."""
    chart = write_chart(
        tmp_path, "c", template=CONFIGMAP_TEMPLATE + DEPLOYMENT_TEMPLATE.replace("{{ .Release.Name }}-api", "web")
    )
    runner = HelmRunner(HELM, kubeconfig=Path(sandbox.kubeconfig))
    args = dict(release="r1", namespace="ns-end", chart=str(chart), labels={}, timeout=300)
    runner.upgrade_install(values={"v": 1}, **args)  # type: ignore[arg-type]
    sandbox.inject_fault(type="never-ready", kind="Deployment", namespace="ns-end", name="web")
    asked = time.monotonic() + 2.0  # end it once helm waits for the rollout
    with pytest.raises(HelmEnded) as info:
        runner.upgrade_install(values={"v": 2}, end=lambda: time.monotonic() > asked, **args)  # type: ignore[arg-type]
    assert time.monotonic() - asked < 10  # not helm's 300 s timeout
    assert info.value.status == "failed" and info.value.revision == 2
    assert runner.status("r1", "ns-end")["info"]["status"] == "failed"  # type: ignore[index]
    # The failed release is not locked: the next upgrade goes through.
    sandbox.clear_faults()
    assert runner.upgrade_install(values={"v": 3}, **args).status == "deployed"  # type: ignore[arg-type]


@pytest.mark.kubesim_only("holds helm in its wait with the sandbox's never-ready fault")
@pytest.mark.helm
def test_sigkill_in_helms_wait_leaves_the_release_pending(tmp_path: Path, sandbox: Any) -> None:
    """The other signal, for comparison: what a kill -9 of helm (or of its container) leaves behind."""
    chart = write_chart(
        tmp_path, "c", template=CONFIGMAP_TEMPLATE + DEPLOYMENT_TEMPLATE.replace("{{ .Release.Name }}-api", "web")
    )
    runner = HelmRunner(HELM, kubeconfig=Path(sandbox.kubeconfig))
    args = dict(release="r2", namespace="ns-kill", chart=str(chart), labels={}, timeout=300)
    runner.upgrade_install(values={"v": 1}, **args)  # type: ignore[arg-type]
    sandbox.inject_fault(type="never-ready", kind="Deployment", namespace="ns-kill", name="web")
    with runner._values_file({"v": 2}) as values:
        proc = subprocess.Popen(
            [
                HELM,
                "upgrade",
                "r2",
                str(chart),
                "-n",
                "ns-kill",
                "--values",
                values,
                "--wait=watcher",
                "--timeout",
                "300s",
                "--kubeconfig",
                str(sandbox.kubeconfig),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(2.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert runner.status("r2", "ns-kill")["info"]["status"] == "pending-upgrade"  # type: ignore[index]
