"""``python -m kubecluster [--workdir DIR] [--nodes 3]``: run the real control plane until SIGTERM/SIGINT.

Prints ``kube ready <url> kubeconfig=<path> (<seconds> s)`` once the API server, controllers, scheduler and
kwok's nodes are ready (the line scripts wait for), then keeps it running.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from pathlib import Path

from kubecluster.cluster import ClusterError, start_cluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None, help="default: a new temporary directory")
    parser.add_argument("--nodes", type=int, default=3)
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kubecluster-"))
    stop = threading.Event()

    def on_signal(*_: object) -> None:
        if not stop.is_set() and started.is_set():
            stop.set()  # the loop below leaves the `with`, which stops every process in order
        else:
            raise KeyboardInterrupt  # still starting: unwind start_cluster, which stops what it started

    started = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    try:
        with start_cluster(workdir, nodes=args.nodes) as cluster:
            started.set()
            print(f"kube ready {cluster.url} kubeconfig={cluster.kubeconfig} ({cluster.started_seconds:.1f} s)",
                  flush=True)
            while not stop.wait(1):
                cluster.check_alive()
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
