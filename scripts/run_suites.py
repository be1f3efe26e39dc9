"""`make test`: the whole suite on kubesim and every cluster test on the real control plane, side by side.

Both halves mostly wait (helm's waits, the controllers, the product's polling): measured alone, the kubesim suite
used ~7 CPU-minutes in 12.5 minutes and the kube half ~3 in 15, so run one after the other they take the sum,
run together little more than the longer one. The kubesim half starts at once and prints as it goes; the kube
half first waits for `make kube` (a cold build, perhaps started in the background by `.ci/run`, holds the
cache's lock) and writes to a log that is printed as one block when both have ended. Either half failing, or
collecting no test (pytest's exit 5), fails the whole.

Usage: python scripts/run_suites.py (PYTEST_ARGS from the environment, as the Makefile passes it).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NO_TESTS = 5


@dataclass
class KubeHalf:
    rc: int = 1
    seconds: float = 0.0
    proc: subprocess.Popen[bytes] | None = None


def _verdict(name: str, rc: int) -> int:
    if rc == NO_TESTS:
        print(f"error: {name}: pytest collected no tests", file=sys.stderr)
        return 1
    return rc


def main() -> int:
    args = shlex.split(os.environ.get("PYTEST_ARGS", ""))
    python = sys.executable
    logs = Path(os.environ.get("CI_LOGS") or ROOT / ".ci" / "logs")
    logs.mkdir(parents=True, exist_ok=True)
    kube_log = logs / "test-kube.log"
    kube = KubeHalf()
    proc_lock = threading.Lock()

    def run_kube() -> None:
        t0 = time.monotonic()
        with kube_log.open("w") as out:
            build = subprocess.run([python, "scripts/install_kube.py"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
            if build.returncode != 0:
                kube.rc, kube.seconds = build.returncode, time.monotonic() - t0
                return
            env = {**os.environ, "DM_TEST_CLUSTER": "kube"}
            with proc_lock:
                proc = subprocess.Popen(
                    [python, "-m", "pytest", "-m", "cluster", *args],
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
                kube.proc = proc
            kube.rc, kube.seconds = proc.wait(), time.monotonic() - t0

    worker = threading.Thread(target=run_kube, name="kube-suite", daemon=True)
    worker.start()
    print(f"== cluster tests on the real control plane: started beside the kubesim suite (log: {kube_log})", flush=True)
    t0 = time.monotonic()
    try:
        sim_rc = subprocess.run([python, "-m", "pytest", *args], cwd=ROOT).returncode
        sim_seconds = time.monotonic() - t0
        worker.join()
    except KeyboardInterrupt:
        with proc_lock:
            if kube.proc is not None:
                kube.proc.terminate()  # its control plane dies with it (PR_SET_PDEATHSIG)
        raise
    print(f"\n== cluster tests on the real control plane ({kube_log}):", flush=True)
    sys.stdout.write(kube_log.read_text(errors="replace"))
    kube_rc = kube.rc
    print(
        f"\n== kubesim suite: exit {sim_rc} in {sim_seconds:.0f} s; real control plane: exit {kube_rc} in "
        f"{kube.seconds:.0f} s (including any wait for `make kube`)",
        flush=True,
    )
    sim = _verdict("kubesim suite", sim_rc)
    real = _verdict("cluster tests on the real control plane", kube_rc)
    return sim or real


if __name__ == "__main__":
    sys.exit(main())
