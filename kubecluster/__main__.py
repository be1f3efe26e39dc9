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
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        with start_cluster(workdir, nodes=args.nodes) as cluster:
            print(f"kube ready {cluster.url} kubeconfig={cluster.kubeconfig} ({cluster.started_seconds:.1f} s)",
                  flush=True)
            while not stop.wait(1):
                cluster.check_alive()
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
