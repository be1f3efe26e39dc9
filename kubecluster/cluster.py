"""Start and stop the real control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok with a few fake nodes.

``start_cluster(workdir)`` is a context manager yielding a :class:`RunningCluster` once ``/readyz`` answers
ok, every node is Ready and the ``default`` ServiceAccount exists (pods can be created). Each process logs
to ``workdir/logs/<name>.log``; a failure to start raises :class:`ClusterError` with the log tails.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from kubecluster.pki import CertificateAuthority, KeyPair, service_account_keys

ROOT = Path(__file__).resolve().parents[1]
KUBE_VERSION = "v1.35.4"
DEFAULT_BIN_DIR = ROOT / ".tools" / "kube" / KUBE_VERSION
KWOK_CONFIG = Path(__file__).with_name("kwok.yaml")
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
SERVICE_CIDR = "10.96.0.0/16"
KWOK_USER = "kwok"
# The controllers the product's behaviour rests on (helm --wait, bootstrap Jobs, namespace deletion,
# ServiceAccount tokens, RBAC aggregation for admin/edit/view) and nothing that expects real kubelets
# or a cloud: no nodelifecycle (kwok's nodes never heartbeat through a kubelet), no volume controllers.
CONTROLLERS = tuple(f"{name}-controller" for name in (
    "deployment", "replicaset", "statefulset", "daemonset", "job", "cronjob", "garbage-collector", "namespace",
    "serviceaccount", "serviceaccount-token", "clusterrole-aggregation", "root-ca-certificate-publisher",
    "endpoints", "endpointslice", "disruption", "resourcequota", "pod-garbage-collector", "ttl-after-finished",
))


class ClusterError(RuntimeError):
    pass


def bin_dir() -> Path:
    """``$DM_KUBE_BIN_DIR`` or ``.tools/kube/<version>`` (``make kube`` builds it)."""
    return Path(os.environ.get("DM_KUBE_BIN_DIR") or DEFAULT_BIN_DIR)


def binaries_present(directory: Path | None = None) -> bool:
    directory = directory or bin_dir()
    return all((directory / name).is_file() for name in BINARIES)


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel SIGKILL the child when the process that started it dies.

    The control plane runs in new sessions (so a terminal's Ctrl-C reaches only us and we stop it in order);
    without this, a test run killed with SIGKILL, or an OOM kill, would leave etcd and the API server behind.
    Linux only (elsewhere: None, and the children outlive a killed parent as before). libc is resolved here,
    in the parent: the forked child only calls it (no imports or allocation between fork and exec).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, url: str, ca: Path, user: dict[str, str], namespace: str = "default") -> Path:
    """A self-contained kubeconfig (data embedded, so it survives a move); ``user`` is a kubeconfig user."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kube", "cluster": {"server": url, "certificate-authority-data": _b64(ca)}}],
        "users": [{"name": "user", "user": user}],
        "contexts": [{"name": "kube", "context": {"cluster": "kube", "user": "user", "namespace": namespace}}],
        "current-context": "kube",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


def tls_context(ca: Path, client: KeyPair) -> ssl.SSLContext:
    """Trust only the cluster's CA and present ``client``'s certificate (httpx wants a context for both)."""
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(client.cert), str(client.key))
    return context


def cert_user(pair: KeyPair) -> dict[str, str]:
    return {"client-certificate-data": _b64(pair.cert), "client-key-data": _b64(pair.key)}


@dataclass
class RunningCluster:
    url: str
    kubeconfig: Path  # cluster-admin (system:masters)
    ca: Path
    admin: KeyPair
    workdir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    started_seconds: float = 0.0

    def client(self, timeout: float = 30) -> httpx.Client:
        """An admin HTTP client on the API server."""
        return httpx.Client(base_url=self.url, verify=tls_context(self.ca, self.admin), timeout=timeout)

    def kubeconfig_for_token(self, path: Path, token: str, namespace: str = "default") -> Path:
        return write_kubeconfig(path, self.url, self.ca, {"token": token}, namespace)

    def logs(self, name: str, lines: int = 30) -> str:
        path = self.workdir / "logs" / f"{name}.log"
        if not path.is_file():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise ClusterError(f"{name} exited {proc.returncode}:\n{self.logs(name)}")

    def stop(self, timeout: float = 15) -> None:
        # Clients first, the API server next, etcd last: nothing logs a storm of connection errors.
        for name in reversed(list(self.processes)):
            proc = self.processes[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.processes.clear()


def _wait(what: str, predicate: Callable[[], Any], cluster: RunningCluster, deadline: float) -> Any:
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        cluster.check_alive()
        try:
            if value := predicate():
                return value
        except (httpx.HTTPError, OSError) as exc:
            last_error = exc
        time.sleep(0.2)
    logs = "\n".join(f"--- {name}\n{cluster.logs(name, 15)}" for name in cluster.processes)
    raise ClusterError(f"timed out waiting for {what} (last error: {last_error})\n{logs}")


# What every container on a kwok node logs (CRI log format, what kwok's server reads): one line, saying
# where it comes from. kwok serves one file for every pod; kubesim synthesises a log per pod.
POD_LOG_LINE = "container started on a kwok node (the control plane's fake kubelet; no process ran)"


def _kwok_config(workdir: Path) -> Path:
    """kwok.yaml plus a ClusterLogs rule (every pod, every container) naming this cluster's log file."""
    log_file = workdir / "pod.log"
    log_file.write_text(f"1970-01-01T00:00:00.000000000Z stdout F {POD_LOG_LINE}\n")
    rule = {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ClusterLogs", "metadata": {"name": "every-pod"},
            "spec": {"selector": {}, "logs": [{"containers": [], "logsFile": str(log_file),
                                                "previousLogsFile": str(log_file)}]}}
    config = workdir / "kwok.yaml"
    config.write_text(KWOK_CONFIG.read_text() + "---\n" + yaml.safe_dump(rule, sort_keys=False))
    return config


def _node(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                       "type": "kwok", "node-role.kubernetes.io/worker": ""},
        },
        "spec": {},
    }


@contextlib.contextmanager
def start_cluster(workdir: Path, *, nodes: int = 3, binaries: Path | None = None, timeout: float = 120,
                  audit_log: bool = False) -> Iterator[RunningCluster]:
    """Start the control plane in ``workdir`` (created); stop it, whatever happens, on exit."""
    started = time.monotonic()
    binaries = binaries or bin_dir()
    missing = [name for name in BINARIES if not (binaries / name).is_file()]
    if missing:
        raise ClusterError(f"{', '.join(missing)} not found in {binaries}: run `make kube`")
    workdir.mkdir(parents=True, exist_ok=True)
    pki_dir, logs = workdir / "pki", workdir / "logs"
    logs.mkdir(exist_ok=True)
    ca = CertificateAuthority.create(pki_dir)
    serving = ca.issue("apiserver", "kube-apiserver", server=True,
                       dns=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                            "kubernetes.default.svc.cluster.local"),
                       ips=("127.0.0.1", "10.96.0.1"))
    admin = ca.issue("admin", "kubernetes-admin", "system:masters")
    kubelet_client = ca.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters")
    sa = service_account_keys(pki_dir)
    etcd_port, etcd_peer, api_port, kwok_port = _free_port(), _free_port(), _free_port(), _free_port()
    # kwok serves the kubelet API its fake nodes lack (container logs, from a file; see _kwok_config): on
    # loopback, over TLS from our CA, at the address and port its node stage writes into each Node.
    kwok_serving = ca.issue("kwok-serving", "kwok", server=True, dns=("localhost",), ips=("127.0.0.1",))
    url = f"https://127.0.0.1:{api_port}"
    kubeconfig = write_kubeconfig(workdir / "admin.kubeconfig", url, ca.cert, cert_user(admin))
    component_kubeconfigs = {
        name: write_kubeconfig(workdir / f"{name}.kubeconfig", url, ca.cert,
                               cert_user(ca.issue(name, f"system:{name}")))
        for name in ("kube-controller-manager", "kube-scheduler")
    }
    # kwok writes node and pod status for the kubelets it replaces: its own identity, so the audit log
    # (and the tests' request counts) can tell its traffic from the tests'.
    component_kubeconfigs["kwok"] = write_kubeconfig(workdir / "kwok.kubeconfig", url, ca.cert,
                                                     cert_user(ca.issue("kwok", KWOK_USER, "system:masters")))
    cluster = RunningCluster(url=url, kubeconfig=kubeconfig, ca=ca.cert, admin=admin, workdir=workdir)

    die_with_parent = _die_with_parent()

    def spawn(name: str, *args: str) -> None:
        with (logs / f"{name}.log").open("ab") as log:
            cluster.processes[name] = subprocess.Popen(
                [str(binaries / name), *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C in the terminal reaches us, and we stop them in order
                preexec_fn=die_with_parent)

    audit_args: list[str] = []
    if audit_log:
        policy = workdir / "audit-policy.yaml"
        # Clients' requests only: the control plane's own chatter would be most of the log.
        quiet = {"level": "None", "users": ["system:kube-controller-manager", "system:kube-scheduler",
                                            "system:apiserver", KWOK_USER]}
        quiet_controllers = {"level": "None", "userGroups": ["system:serviceaccounts:kube-system"]}
        policy.write_text(yaml.safe_dump({"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
                                          "omitStages": ["RequestReceived", "ResponseStarted"],
                                          "rules": [quiet, quiet_controllers, {"level": "Metadata"}]}))
        audit_args = [f"--audit-policy-file={policy}", f"--audit-log-path={workdir / 'audit.log'}",
                      "--audit-log-format=json", "--audit-log-mode=blocking"]
    try:
        spawn("etcd", f"--data-dir={workdir / 'etcd'}", "--name=default",
              f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
              f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
              f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
              f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
              f"--initial-cluster=default=http://127.0.0.1:{etcd_peer}",
              "--unsafe-no-fsync",  # a throw-away test store: durability costs seconds per test on a busy disk
              "--log-level=warn", "--quota-backend-bytes=4294967296")
        spawn("kube-apiserver",
              f"--etcd-servers=http://127.0.0.1:{etcd_port}",
              "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={api_port}",
              f"--tls-cert-file={serving.cert}", f"--tls-private-key-file={serving.key}",
              f"--client-ca-file={ca.cert}",
              f"--service-account-key-file={sa.cert}", f"--service-account-signing-key-file={sa.key}",
              "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
              "--authorization-mode=Node,RBAC",
              f"--service-cluster-ip-range={SERVICE_CIDR}",
              "--allow-privileged=true", "--profiling=false", "--endpoint-reconciler-type=none",
              # A new Node is tainted not-ready until the node-lifecycle controller sees its kubelet; kwok's
              # nodes have none, so neither the taint nor that controller (it would evict their pods).
              "--disable-admission-plugins=TaintNodesByCondition",
              "--enable-priority-and-fairness=false",  # tests burst requests; APF would queue them
              # Pod logs: the API server dials the node's InternalIP (127.0.0.1, kwok's server), checking its
              # certificate against our CA and presenting its own client certificate.
              "--kubelet-preferred-address-types=InternalIP", f"--kubelet-certificate-authority={ca.cert}",
              f"--kubelet-client-certificate={kubelet_client.cert}", f"--kubelet-client-key={kubelet_client.key}",
              "--v=1", *audit_args)
        deadline = started + timeout
        with cluster.client(timeout=5) as client:
            _wait("kube-apiserver /readyz", lambda: client.get("/readyz").status_code == 200, cluster, deadline)
        spawn("kube-controller-manager",
              f"--kubeconfig={component_kubeconfigs['kube-controller-manager']}",
              f"--authentication-kubeconfig={component_kubeconfigs['kube-controller-manager']}",
              f"--authorization-kubeconfig={component_kubeconfigs['kube-controller-manager']}",
              "--bind-address=127.0.0.1", "--secure-port=0", "--leader-elect=false",
              f"--controllers={','.join(CONTROLLERS)}",
              f"--service-account-private-key-file={sa.key}", f"--root-ca-file={ca.cert}",
              "--use-service-account-credentials=true", f"--service-cluster-ip-range={SERVICE_CIDR}",
              "--kube-api-qps=200", "--kube-api-burst=400", "--concurrent-job-syncs=10",
              "--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
              "--v=1")
        spawn("kube-scheduler",
              f"--kubeconfig={component_kubeconfigs['kube-scheduler']}",
              f"--authentication-kubeconfig={component_kubeconfigs['kube-scheduler']}",
              f"--authorization-kubeconfig={component_kubeconfigs['kube-scheduler']}",
              "--bind-address=127.0.0.1", "--secure-port=0", "--leader-elect=false",
              "--kube-api-qps=200", "--kube-api-burst=400", "--v=1")
        spawn("kwok", f"--kubeconfig={component_kubeconfigs['kwok']}", f"--config={_kwok_config(workdir)}",
              "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
              f"--server-address=127.0.0.1:{kwok_port}", f"--node-port={kwok_port}", "--node-ip=127.0.0.1",
              f"--tls-cert-file={kwok_serving.cert}", f"--tls-private-key-file={kwok_serving.key}")
        with cluster.client() as client:
            for i in range(nodes):
                _wait("a node to be created",
                      lambda i=i: client.post("/api/v1/nodes", json=_node(f"kwok-node-{i}")).status_code in (201, 409),
                      cluster, deadline)

            def nodes_ready() -> bool:
                items = client.get("/api/v1/nodes").raise_for_status().json()["items"]
                ready = [n for n in items if any(c["type"] == "Ready" and c["status"] == "True"
                                                 for c in n.get("status", {}).get("conditions", []))]
                return len(ready) >= nodes

            _wait("kwok's nodes to be Ready", nodes_ready, cluster, deadline)
            # Pods can be created only once the namespace's `default` ServiceAccount exists.
            _wait("the default ServiceAccount",
                  lambda: client.get("/api/v1/namespaces/default/serviceaccounts/default").status_code == 200,
                  cluster, deadline)
        cluster.started_seconds = time.monotonic() - started
        yield cluster
    finally:
        cluster.stop()
