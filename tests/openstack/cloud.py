"""Run the `demo` cluster's OpenStack for real, from what the charts and bootstrap scripts render.

No containers and no Kubernetes: one private network namespace stands in for the pod network (every
pod gets its own address on its loopback, Services resolve through an `/etc/hosts` of that
namespace), and every pod or Job runs in its own private mount namespace where its volumes are bind
mounts at the paths the rendered manifests name (`/etc/<service>/<file>` subPath mounts of the
`<release>-etc` Secret, emptyDirs, projected key Secrets, the service-account token). The
"image" is the venv scripts/install_openstack.py builds, mounted at `/var/lib/openstack` as in
openstack-helm's images. MariaDB, RabbitMQ and memcached are Debian's, the Kubernetes API the
bootstrap steps call is kubesim (over TLS, as in a pod).

What the kubelet does is done here the same way: env from `secretKeyRef`/`$(VAR)` expansion, the
container command, HTTP probes to `<pod IP>:<port><path>` with `Host: <pod IP>:<port>` and a
`kube-probe/` user agent. Each bootstrap step runs its rendered script as its Job would
(deploy_manager.bootstrap.manifests decides the Job's env and mounts).
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from deploy_manager.bootstrap.manifests import secret_env
from tests.charts import layers

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = "demo"
# The services the tier deploys, in the order the demo cluster's `needs` start them.
SERVICES = ["keystone", "glance", "placement", "nova", "neutron", "cinder"]
# Workloads the tier cannot run, and why (the rest of their component runs).
NOT_RUN = {"nova-novncproxy": "noVNC's html/js (/usr/share/novnc) ship in the image, not on PyPI"}
# How long a workload may take to become Ready (helm --wait's part in the tier).
READY_TIMEOUT = 90.0
# Services whose pods may not be Ready before their `after` steps (none: keystone's key steps now run `before`,
# as the chart's bootstrap ServiceAccount, which the manager creates from the render ahead of the install).
KNOWN_NOT_READY_BEFORE_AFTER_STEPS: set[str] = set()
DEBIAN_PACKAGES = {"mariadb-server": "mariadbd", "rabbitmq-server": "rabbitmq-server", "memcached": "memcached",
                   "iproute2": "ip"}
INFRA_IPS = {"mariadb": "10.244.1.1", "rabbitmq": "10.244.1.2", "memcached": "10.244.1.3"}
KUBE_API_IP = "10.96.0.1"
# A hypervisor host outside the control plane: nova-compute on nova's fake virt driver.
COMPUTE_IP = "10.244.2.1"
COMPUTE_HOST = "compute-0"
# (cinder-volume is the cinder chart's `volume` workload now, run from the render like every pod.) The address
# a storage host had is kept free.
VOLUME_IP = "10.244.2.2"
# The Open vSwitch agent the hypervisor host would run, as neutron's agents table knows it (see register_l2_agent).
OVS_AGENT_TYPE = "Open vSwitch agent"
KUBE_PROBE_UA = "kube-probe/1.35"
# Components the tier deploys beside SERVICES (no bootstrap steps, no workflow through the openstack client).
DASHBOARD = ["horizon"]
# Users the images define that this machine does not (LOCI's service users): a workload whose server drops to one
# (horizon's uwsgi `uid`) gets it in the pod network's /etc/passwd, and this machine's Python readable by it.
IMAGE_USERS = {"horizon": ("horizon", 42424)}
CLONE_NEWNET = 0x40000000
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
T = TypeVar("T")


def poll(what: str, check: Callable[[], T], timeout: float) -> T:
    """check() every 2 s until it returns something truthy, which is returned; fail saying what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} after {timeout:.0f} s"
        time.sleep(2)


def load_installer() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("install_openstack", ROOT / "scripts" / "install_openstack.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RELEASE: str = load_installer().RELEASE
VENV = ROOT / ".tools" / "openstack" / RELEASE


def which(name: str) -> str | None:
    for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin", *os.environ.get("PATH", "").split(":")):
        if d and os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    return None


def why_not_runnable() -> str | None:
    """None when this machine can run the tier (installing Debian's servers if root may), else why not."""
    if sys.platform != "linux":
        return "the OpenStack tier needs Linux namespaces"
    if os.geteuid() != 0:
        return "the OpenStack tier needs root (private network/mount namespaces, bind mounts); run it as root or in CI"
    if not which("unshare") or not which("nsenter"):
        return "util-linux unshare/nsenter are not installed"
    missing = [pkg for pkg, binary in DEBIAN_PACKAGES.items() if not which(binary)]
    if missing:
        if not which("apt-get"):
            return f"{', '.join(missing)} missing and apt-get is unavailable"
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        log = Path("/tmp/dm-openstack-apt.log")
        with log.open("w") as fh:
            ok = subprocess.run(["apt-get", "update", "-qq"], stdout=fh, stderr=fh, env=env).returncode == 0 and \
                subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                               stdout=fh, stderr=fh, env=env).returncode == 0
        if not ok:
            return f"apt-get could not install {', '.join(missing)} (see {log})"
    if not (VENV / "bin" / "keystone-manage").exists():
        return f"the OpenStack {RELEASE} venv is missing: run `make openstack` first"
    return None


# -- the rendered cluster -------------------------------------------------------------------------------
@dataclass
class Rendered:
    """One component as helm renders it for the demo cluster."""

    comp: layers.Component
    objects: list[dict[str, Any]]

    @property
    def name(self) -> str:
        return self.comp.name

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("kind") == kind]

    def etc(self) -> dict[str, bytes]:
        name = f"{self.comp.release}-etc"
        for secret in self.of_kind("Secret"):
            if secret["metadata"]["name"] == name:
                return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
        return {}

    def workloads(self) -> list[dict[str, Any]]:
        return self.of_kind("Deployment") + self.of_kind("StatefulSet")


def render(component: str) -> Rendered:
    comp = next(c for c in layers.components(CLUSTER) if c.name == component)
    return Rendered(comp, layers.objects(layers.template(comp)))


def secret_refs() -> set[tuple[str, str]]:
    """Every (Secret, key) the demo cluster's values reference: what the values README tells operators to provision."""
    refs: set[tuple[str, str]] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("name"), str) and isinstance(node.get("key"), str) and len(node) == 2:
                refs.add((node["name"], node["key"]))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for comp in layers.components(CLUSTER):
        walk(comp.values.get("secrets"))
        walk((comp.values.get("bootstrap") or {}).get("secrets"))
    return refs


# -- namespaces ---------------------------------------------------------------------------------------------
libc = ctypes.CDLL("libc.so.6", use_errno=True)


def _enter_netns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({path})")
    finally:
        os.close(fd)


@dataclass
class Mount:
    source: Path
    target: str
    file: bool = False  # a subPath mount of one file
    readonly: bool = True


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Netns:
    """The pod network: a network + mount namespace held open by a sleeping process.

    Its mount namespace overlays /etc, /run and /var/lib (so hosts files and mount points never touch the
    machine) and mounts the OpenStack venv at /var/lib/openstack. Every process started through it gets
    a further private mount namespace for its own volumes.
    """

    def __init__(self, root: Path, hosts: dict[str, str], addresses: list[str]) -> None:
        self.root = root
        self.holder = subprocess.Popen(["unshare", "--net", "--mount", "--propagation", "private", "sleep", "infinity"],
                                       start_new_session=True)
        self.procs: list[Proc] = []
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{self.holder.pid}/ns/net") == os.readlink("/proc/self/ns/net"):
            if time.monotonic() > deadline:
                raise RuntimeError("unshare did not create a network namespace")
            time.sleep(0.01)
        lines = ["127.0.0.1 localhost", *(f"{ip} {name}" for name, ip in sorted(hosts.items(), key=lambda x: x[0]))]
        (root / "hosts").write_text("\n".join(lines) + "\n")
        setup = ["set -e", "ip link set lo up", *(f"ip addr add {a}/32 dev lo" for a in addresses)]
        for d in ("etc", "run", "var/lib"):
            up, work = root / "overlay" / d.replace("/", "_") / "up", root / "overlay" / d.replace("/", "_") / "work"
            up.mkdir(parents=True)
            work.mkdir(parents=True)
            setup.append(f"mount -t overlay overlay -o lowerdir=/{d},upperdir={up},workdir={work} /{d}")
        setup += [f"cp {root / 'hosts'} /etc/hosts", "mkdir -p /var/lib/openstack",
                  f"mount --bind {VENV.resolve()} /var/lib/openstack"]
        self.run(["/bin/bash", "-c", "\n".join(setup)], check=True)
        self._pool = ThreadPoolExecutor(2, initializer=_enter_netns, initargs=(f"/proc/{self.holder.pid}/ns/net",))

    def prefix(self, mounts: list[Mount] = (), setup: str = "") -> list[str]:  # type: ignore[assignment]
        base = ["nsenter", "-t", str(self.holder.pid), "--net", "--mount", "--"]
        if not mounts and not setup:
            return base
        script = ["set -e"]
        for m in mounts:
            if m.file:
                script.append(f"mkdir -p {os.path.dirname(m.target)} && touch {m.target}")
            else:
                script.append(f"mkdir -p {m.target}")
            script.append(f"mount --bind {m.source} {m.target}")
            if m.readonly:
                script.append(f"mount -o remount,bind,ro {m.target}")
        if setup:
            script.append(setup)
        script.append('exec "$@"')
        return [*base, "unshare", "--mount", "--propagation", "private", "--",
                "/bin/bash", "-c", "\n".join(script), "pod"]

    def run(self, argv: list[str], mounts: list[Mount] = (), env: dict[str, str] | None = None,  # type: ignore[assignment]
            timeout: float = 600, check: bool = False, input: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*self.prefix(mounts), *argv], env=env, capture_output=True, text=True,
                                timeout=timeout, input=input)
        if check and result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({result.returncode}):\n"
                               f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def start(self, name: str, argv: list[str], mounts: list[Mount] = (),  # type: ignore[assignment]
              env: dict[str, str] | None = None, setup: str = "") -> Proc:
        log = self.root / "logs" / f"{name}.log"
        log.parent.mkdir(exist_ok=True)
        with log.open("ab") as fh:
            popen = subprocess.Popen([*self.prefix(mounts, setup), *argv], env=env, stdout=fh, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on a thread inside the pod network (sockets it opens live there)."""
        return self._pool.submit(fn).result()

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.popen.poll() is None:
                with _suppress():
                    os.killpg(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs:
            with _suppress():
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        # Daemons that left their session (epmd) still live in the namespace: end them by pid.
        netns = os.readlink(f"/proc/{self.holder.pid}/ns/net")
        for pid in _pids_in_netns(netns):
            if pid != self.holder.pid:
                with _suppress():
                    os.kill(pid, signal.SIGKILL)
        for proc in self.procs:
            if proc.popen.poll() is None:
                with _suppress():
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                    proc.popen.wait(timeout=5)
        self._pool.shutdown(wait=False)
        os.killpg(self.holder.pid, signal.SIGKILL)
        self.holder.wait()


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], (OSError, subprocess.TimeoutExpired))  # type: ignore[arg-type]


def _pids_in_netns(netns: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/net") == netns:
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


# -- kubelet-like helpers --------------------------------------------------------------------------------
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def container_env(container: dict[str, Any], secret_values: dict[tuple[str, str], str],
                  pod_ip: str | None = None) -> dict[str, str]:
    """The container's env as the kubelet builds it: secretKeyRef resolved, `$(VAR)` expanded from earlier entries,
    the downward API's status.podIP the pod's address (when known)."""
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), str(item["value"]))
        elif "secretKeyRef" in (item.get("valueFrom") or {}):
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secret_values[(ref["name"], ref["key"])]
        elif "fieldRef" in (item.get("valueFrom") or {}):
            path = item["valueFrom"]["fieldRef"].get("fieldPath")
            env[item["name"]] = pod_ip if pod_ip and path == "status.podIP" else "pod-0"
    return env


def base_env() -> dict[str, str]:
    """What the image's environment provides: the venv first on PATH (LOCI images do the same)."""
    return {
        "PATH": "/var/lib/openstack/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def port_number(container: dict[str, Any], port: Any) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise KeyError(f"container {container['name']} has no port named {port!r}")


@dataclass
class ProbeResult:
    ok: bool
    detail: str


def http_probe(netns: Netns, pod_ip: str, container: dict[str, Any], probe: dict[str, Any]) -> ProbeResult:
    get = probe["httpGet"]
    port = port_number(container, get["port"])
    url = f"{get.get('scheme', 'HTTP').lower()}://{pod_ip}:{port}{get.get('path', '/')}"
    headers = {"Host": f"{pod_ip}:{port}", "User-Agent": KUBE_PROBE_UA, "Accept": "*/*", "Connection": "close"}
    for h in get.get("httpHeaders") or []:
        headers[h["name"]] = h["value"]

    def send() -> ProbeResult:
        try:
            resp = httpx.get(url, headers=headers, timeout=probe.get("timeoutSeconds", 1), follow_redirects=False)
        except httpx.HTTPError as exc:
            return ProbeResult(False, f"GET {url}: {type(exc).__name__}: {exc}")
        # The kubelet counts 200 <= status < 400 as success.
        return ProbeResult(200 <= resp.status_code < 400, f"GET {url} -> {resp.status_code} {resp.text[:200]!r}")

    return netns.call(send)


def probe_once(netns: Netns, pod_ip: str, container: dict[str, Any], probe: dict[str, Any],
               mounts: list[Mount]) -> ProbeResult:
    if "httpGet" in probe:
        return http_probe(netns, pod_ip, container, probe)
    if "tcpSocket" in probe:
        port = port_number(container, probe["tcpSocket"]["port"])

        def connect() -> ProbeResult:
            import socket

            try:
                with socket.create_connection((pod_ip, port), timeout=probe.get("timeoutSeconds", 1)):
                    return ProbeResult(True, f"tcp {pod_ip}:{port} open")
            except OSError as exc:
                return ProbeResult(False, f"tcp {pod_ip}:{port}: {exc}")

        return netns.call(connect)
    if "exec" in probe:
        result = netns.run(probe["exec"]["command"], mounts=mounts, env=base_env(),
                           timeout=probe.get("timeoutSeconds", 1) + 10)
        return ProbeResult(result.returncode == 0, f"exec {probe['exec']['command']} -> {result.returncode}")
    raise AssertionError(f"unknown probe {probe}")


# -- the cloud -------------------------------------------------------------------------------------------
@dataclass
class Pod:
    workload: str
    ip: str
    container: dict[str, Any]
    mounts: list[Mount]
    proc: Proc


@dataclass
class StepRun:
    component: str
    step: str
    returncode: int
    output: str


@dataclass
class Cloud:
    root: Path
    components: list[str]
    secret_values: dict[tuple[str, str], str] = field(default_factory=dict)
    rendered: dict[str, Rendered] = field(default_factory=dict)
    pod_ips: dict[str, str] = field(default_factory=dict)
    pods: dict[str, Pod] = field(default_factory=dict)
    steps: list[StepRun] = field(default_factory=list)
    netns: Netns | None = None
    db_admin_password: str = ""
    compute: Proc | None = None

    # -- set-up -------------------------------------------------------------------------------------------
    def prepare(self) -> None:
        self.secret_values = {ref: secrets.token_urlsafe(18) for ref in sorted(secret_refs())}
        for name in self.components:
            self.rendered[name] = render(name)
        hosts: dict[str, str] = {}
        n = 10
        for name in self.components:
            r = self.rendered[name]
            for wl in r.workloads():
                ip = f"10.244.0.{n}"
                n += 1
                self.pod_ips[wl["metadata"]["name"]] = ip
                for svc in r.of_kind("Service"):
                    if svc["spec"].get("selector", {}).get("app.kubernetes.io/component") == \
                            wl["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/component"):
                        hosts.update(_dns_names(svc["metadata"]["name"], r.comp.namespace, ip))
        db_host = layers.components(CLUSTER)[0].values["global"]["database"]["host"]
        hosts[db_host] = INFRA_IPS["mariadb"]
        hosts.update(_dns_names("rabbitmq", "openstack", INFRA_IPS["rabbitmq"]))
        hosts.update(_dns_names("rabbitmq-headless", "openstack", INFRA_IPS["rabbitmq"]))
        hosts.update(_dns_names("memcached", "openstack", INFRA_IPS["memcached"]))
        hosts.update(_dns_names("kubernetes", "default", KUBE_API_IP))
        self.netns = Netns(self.root, hosts, [*self.pod_ips.values(), *INFRA_IPS.values(), KUBE_API_IP,
                                                       COMPUTE_IP, VOLUME_IP])
        for part in ("lib/keystone", "lib/glance", "lib/placement", "lib/nova", "lib/neutron", "lib/cinder"):
            self.netns.run(["mkdir", "-p", f"/var/{part}/tmp"], check=True)

    def start_infrastructure(self) -> None:
        assert self.netns is not None
        self._start_mariadb()
        self._start_rabbitmq()
        self.netns.start("memcached",
                         ["memcached", "-u", "root", "-l", INFRA_IPS["memcached"], "-p", "11211", "-m", "64"])
        self._start_kube_api()
        self._wait_tcp(INFRA_IPS["memcached"], 11211, "memcached")

    def _wait_tcp(self, host: str, port: int, what: str, timeout: float = 60) -> None:
        import socket

        assert self.netns is not None

        def check() -> bool:
            try:
                with socket.create_connection((host, port), timeout=1):
                    return True
            except OSError:
                return False

        deadline = time.monotonic() + timeout
        while not self.netns.call(check):
            if time.monotonic() > deadline:
                logs = "\n".join(p.tail() for p in self.netns.procs if p.name == what)
                raise RuntimeError(f"{what} does not listen on {host}:{port} after {timeout:.0f} s\n{logs}")
            time.sleep(0.3)

    def _start_mariadb(self) -> None:
        assert self.netns is not None
        data = self.root / "mariadb"
        data.mkdir()
        self.netns.run(["mariadb-install-db", "--no-defaults", "--user=root", f"--datadir={data}",
                        "--auth-root-authentication-method=socket", "--skip-test-db"], check=True)
        self.netns.start("mariadb", [
            "mariadbd", "--no-defaults", "--user=root", f"--datadir={data}", f"--socket={data}/sock",
            f"--bind-address={INFRA_IPS['mariadb']}", "--port=3306", "--skip-name-resolve", "--skip-log-bin",
            "--innodb-buffer-pool-size=128M", "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
            "--max-connections=500", "--character-set-server=utf8mb4", f"--pid-file={data}/pid",
        ])
        self._wait_tcp(INFRA_IPS["mariadb"], 3306, "mariadb")
        # The operator's database administrator: the first schema step of each service creates its databases as it.
        self.db_admin_password = self.secret_values.get(("mariadb-admin", "password"), secrets.token_urlsafe(18))
        self.sql(f"CREATE USER 'root'@'%' IDENTIFIED BY '{self.db_admin_password}';"
                 "GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION; FLUSH PRIVILEGES;")

    def sql(self, statements: str) -> str:
        assert self.netns is not None
        sock = self.root / "mariadb" / "sock"
        out = self.netns.run(["mariadb", f"--socket={sock}", "-uroot", "-N", "-e", statements],
                             check=True)
        return out.stdout

    def _start_rabbitmq(self) -> None:
        assert self.netns is not None
        home = self.root / "rabbitmq"
        (home / "mnesia").mkdir(parents=True)
        (home / "rabbitmq.conf").write_text("listeners.tcp.default = 5672\nloopback_users.guest = false\n"
                                            f"management.tcp.ip = {INFRA_IPS['rabbitmq']}\n"
                                            "management.tcp.port = 15672\n")
        # The management plugin, as the chart enables it: the rabbitmq-init step creates vhosts and users through it.
        (home / "enabled_plugins").write_text("[rabbitmq_management].\n")
        (home / "rabbitmq-env.conf").write_text("")
        sts = self.rendered["rabbitmq"].of_kind("StatefulSet")[0]
        env = container_env(sts["spec"]["template"]["spec"]["containers"][0], self.secret_values)
        cookie = home / ".erlang.cookie"
        cookie.write_text(env["RABBITMQ_ERLANG_COOKIE"])
        cookie.chmod(0o400)
        self.rabbit_env = {
            **base_env(), "HOME": str(home), "RABBITMQ_NODENAME": "rabbit@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": INFRA_IPS["rabbitmq"], "RABBITMQ_NODE_PORT": "5672",
            "RABBITMQ_DIST_PORT": "25672", "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(home / "log"), "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(home / "rabbitmq-env.conf"), "RABBITMQ_LOGS": "-",
            "RABBITMQ_DEFAULT_USER": env["RABBITMQ_DEFAULT_USER"],
            "RABBITMQ_DEFAULT_PASS": env["RABBITMQ_DEFAULT_PASS"],
        }
        self.netns.start("rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], env=self.rabbit_env)
        self._wait_tcp(INFRA_IPS["rabbitmq"], 5672, "rabbitmq", timeout=120)
        self.rabbitmqctl("await_startup")

    def rabbitmqctl(self, *args: str) -> str:
        assert self.netns is not None
        argv = ["/usr/lib/rabbitmq/bin/rabbitmqctl", "-q", *args]
        return self.netns.run(argv, env=self.rabbit_env, check=True).stdout

    def _start_kube_api(self) -> None:
        """kubesim over TLS at the in-cluster API address, with a service-account directory for the Jobs."""
        assert self.netns is not None
        sa = self.root / "serviceaccount"
        sa.mkdir()
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=kubernetes",
                        "-addext", f"subjectAltName=IP:{KUBE_API_IP},DNS:kubernetes.default.svc",
                        "-keyout", str(self.root / "kube-api.key"), "-out", str(sa / "ca.crt")],
                       check=True, capture_output=True)
        (sa / "token").write_text("bootstrap-job-token")
        (sa / "namespace").write_text("openstack")
        code = textwrap.dedent(f"""
            import uvicorn
            from kubesim.server import create_app
            from kubesim.sim import Simulator
            uvicorn.run(create_app(Simulator()), host={KUBE_API_IP!r}, port=443, log_level="warning",
                        ssl_certfile={str(sa / 'ca.crt')!r}, ssl_keyfile={str(self.root / 'kube-api.key')!r})
        """)
        self.netns.start("kube-api", [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)})
        self._wait_tcp(KUBE_API_IP, 443, "kube-api")
        ca = str(sa / "ca.crt")
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "openstack"}}
        status = self.netns.call(lambda: httpx.post(f"https://{KUBE_API_IP}/api/v1/namespaces", json=body,
                                                    verify=_tls(ca), timeout=10).status_code)
        assert status == 201, f"creating the namespace in kubesim: HTTP {status}"

    def kube_get(self, path: str) -> tuple[int, Any]:
        assert self.netns is not None
        ca = str(self.root / "serviceaccount" / "ca.crt")

        def get() -> tuple[int, Any]:
            resp = httpx.get(f"https://{KUBE_API_IP}{path}", verify=_tls(ca), timeout=10)
            return resp.status_code, (resp.json() if resp.status_code == 200 else None)

        return self.netns.call(get)

    # -- pods ------------------------------------------------------------------------------------------------
    def pod_mounts(self, r: Rendered, pod_name: str, spec: dict[str, Any], container: dict[str, Any]) -> list[Mount]:
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        etc_dir = self._etc_dir(r)
        mounts: list[Mount] = []
        for vm in container.get("volumeMounts") or []:
            vol = volumes[vm["name"]]
            if "secret" in vol and vol["secret"]["secretName"] == f"{r.comp.release}-etc":
                if "subPath" in vm:
                    mounts.append(Mount(etc_dir / vm["subPath"], vm["mountPath"], file=True))
                else:
                    mounts.append(Mount(etc_dir, vm["mountPath"]))
            elif "secret" in vol:  # projected later by project_secrets(), like the kubelet does
                mounts.append(Mount(self._secret_dir(vol["secret"]["secretName"]), vm["mountPath"]))  # always read-only
            elif "configMap" in vol:
                d = self._configmap_dir(r, vol["configMap"]["name"])
                mounts.append(Mount(d, vm["mountPath"]))
            elif "emptyDir" in vol:
                d = self.root / "pods" / pod_name / vm["name"]
                d.mkdir(parents=True, exist_ok=True)
                d.chmod(0o777)  # the kubelet makes an emptyDir world-writable (a server that drops root writes there)
                mounts.append(Mount(d, vm["mountPath"], readonly=bool(vm.get("readOnly"))))
            else:
                raise AssertionError(f"{pod_name}: volume {vm['name']} of an unsupported kind: {vol}")
        return mounts

    def _etc_dir(self, r: Rendered) -> Path:
        d = self.root / "secrets" / f"{r.comp.release}-etc"
        if not d.exists():
            d.mkdir(parents=True)
            for name, data in r.etc().items():
                (d / name).write_bytes(data)
        return d

    def _configmap_dir(self, r: Rendered, name: str) -> Path:
        d = self.root / "configmaps" / name
        if not d.exists():
            d.mkdir(parents=True)
            cm = next(o for o in r.of_kind("ConfigMap") if o["metadata"]["name"] == name)
            for key, data in (cm.get("data") or {}).items():
                (d / key).write_text(data)
        return d

    def _secret_dir(self, name: str) -> Path:
        d = self.root / "secrets" / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def project_secrets(self) -> None:
        """Copy Secrets the bootstrap Jobs wrote into the API into the mounted volumes (the kubelet's sync)."""
        for d in sorted((self.root / "secrets").iterdir()):
            if d.name.endswith("-etc"):
                continue
            status, body = self.kube_get(f"/api/v1/namespaces/openstack/secrets/{d.name}")
            if status == 200:
                data = body.get("data") or {}
                for key, value in data.items():
                    target = d / key
                    target.write_bytes(base64.b64decode(value))
                    target.chmod(0o400)
                for stale in d.iterdir():  # a key the Secret no longer holds leaves the volume too (rotation)
                    if stale.name not in data:
                        stale.unlink()

    def start_workloads(self, component: str) -> list[Pod]:
        assert self.netns is not None
        r = self.rendered[component]
        started = []
        for wl in r.workloads():
            name = wl["metadata"]["name"]
            if name in NOT_RUN:
                continue
            spec = wl["spec"]["template"]["spec"]
            container = spec["containers"][0]
            mounts = self.pod_mounts(r, name, spec, container)
            self.project_secrets()  # the kubelet fills a pod's Secret volumes before its containers start
            env = {**base_env(), **container_env(container, self.secret_values, self.pod_ips[name])}
            argv = [*(container.get("command") or []), *(container.get("args") or [])]
            pod = Pod(name, self.pod_ips[name], container, mounts,
                      self.netns.start(name, argv, mounts, env, self._image_setup(name)))
            self.pods[name] = pod
            started.append(pod)
        return started

    def _image_setup(self, workload: str) -> str:
        """Shell run as root in the pod's mount namespace before its command: what its image has and this machine
        lacks. For a server that drops to an image user: that user, and this machine's Python (under root's home,
        mode 0700) reachable by it through an overlay of /root whose top directory is 0711 (nothing on the host
        changes)."""
        if workload not in IMAGE_USERS:
            return ""
        user, uid = IMAGE_USERS[workload]
        overlay = self.root / "overlay" / f"root-{workload}"
        up, work = overlay / "up", overlay / "work"
        up.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        up.chmod(0o711)
        return "\n".join([
            f"grep -q '^{user}:' /etc/group || echo '{user}:x:{uid}:' >> /etc/group",
            f"grep -q '^{user}:' /etc/passwd || echo '{user}:x:{uid}:{uid}:{user}:/nonexistent:/usr/sbin/nologin'"
            " >> /etc/passwd",
            f"mount -t overlay overlay -o lowerdir=/root,upperdir={up},workdir={work} /root",
        ])

    def start_compute(self) -> Proc:
        """nova-compute on a hypervisor host, on nova's fake virt driver (started once; later calls return it)."""
        if self.compute is not None and self.compute.popen.poll() is None:
            return self.compute
        self.compute = self._start_compute()
        return self.compute

    def _start_compute(self) -> Proc:
        return self._start_host_service("nova", "nova-conductor", "nova-compute", f"""\
            [DEFAULT]
            compute_driver = fake.FakeDriver
            host = {COMPUTE_HOST}
            my_ip = {COMPUTE_IP}
        """)

    def nova_compute_up(self, compute: Proc, tail: Callable[[str], str] = str) -> bool:
        """One look: `compute` (nova-compute) must still run (else fail with `tail` of its log) and be reported up
        on COMPUTE_HOST."""
        out = self.client("compute", "service", "list", "--service", "nova-compute", "-f", "json")
        assert compute.popen.poll() is None, f"nova-compute exited:\n{tail(compute.tail())}"
        return out.returncode == 0 and any(s["Host"] == COMPUTE_HOST and s["State"] == "up"
                                           for s in json.loads(out.stdout))

    def start_volume(self) -> Proc:
        """cinder-volume as the cinder chart renders it (its `volume` workload, from `volume.backends`): the pod
        start_workloads("cinder") started. Kept for callers that asked for the storage host before it was one."""
        pod = self.pods.get("cinder-volume")
        assert pod is not None, "cinder-volume was not started: the cinder chart renders no volume workload"
        return pod.proc

    def volume_hosts(self) -> set[str]:
        """`<backend_host>@<backend>` of every backend the demo's cinder-volume serves (cinder's service hosts)."""
        volume = self.rendered["cinder"].comp.values["volume"]
        return {f"{volume.get('backendHost', 'cinder-volume')}@{name}" for name in volume["backends"]}

    def register_l2_agent(self, host: str, ip: str) -> None:
        """What the hypervisor host's Open vSwitch agent tells neutron about itself (its state report), written
        straight into neutron's agents table: alive (the heartbeat a day ahead), vxlan tunnels. With it the
        openvswitch mechanism driver binds ports to `host`, as it does in a cluster; no dataplane is behind it
        (nova's fake driver plugs nothing), so ports stay DOWN, which nova's fake driver does not wait for."""
        configurations = ('{"tunnel_types": ["vxlan"], "bridge_mappings": {}, "integration_bridge": "br-int", '
                          f'"tunneling_ip": "{ip}", "l2_population": true, "datapath_type": "system", '
                          '"ovs_hybrid_plug": false}')
        self.sql(f"""
            DELETE FROM neutron.agents WHERE host = '{host}' AND agent_type = '{OVS_AGENT_TYPE}';
            INSERT INTO neutron.agents (id, agent_type, `binary`, topic, host, admin_state_up, created_at,
                started_at, heartbeat_timestamp, configurations, `load`)
            VALUES (UUID(), '{OVS_AGENT_TYPE}', 'neutron-openvswitch-agent', 'N/A', '{host}', 1, UTC_TIMESTAMP(),
                UTC_TIMESTAMP(), UTC_TIMESTAMP() + INTERVAL 1 DAY, '{configurations}', 0);
        """)

    def remove_l2_agent(self, host: str) -> None:
        self.sql(f"DELETE FROM neutron.agents WHERE host = '{host}' AND agent_type = '{OVS_AGENT_TYPE}';")

    def _start_host_service(self, component: str, like: str, binary: str, host_conf: str) -> Proc:
        """A service the charts do not deploy (it runs on hypervisor/storage hosts): the rendered config, the env of
        the chart's `like` pod, and the host's own file for what the control-plane chart cannot know (driver,
        host name and address), layered with `--config-file` twice (the later one wins).
        """
        assert self.netns is not None
        r = self.rendered[component]
        template = next(wl for wl in r.workloads() if wl["metadata"]["name"] == like)
        spec = template["spec"]["template"]["spec"]
        container = spec["containers"][0]
        path = self.root / "host-conf" / f"{binary}.conf"  # (root/hosts is the pod network's /etc/hosts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(host_conf))
        mounts = [*self.pod_mounts(r, binary, spec, container),
                  Mount(path, f"/etc/{component}/{binary}.conf", file=True)]
        env = {**base_env(), **container_env(container, self.secret_values)}
        argv = [binary, "--config-file", f"/etc/{component}/{component}.conf",
                "--config-file", f"/etc/{component}/{binary}.conf"]
        return self.netns.start(binary, argv, mounts, env)

    def wait_ready(self, pod: Pod, timeout: float = 180) -> ProbeResult:
        assert self.netns is not None
        probe = pod.container.get("readinessProbe")
        if probe is None:
            return ProbeResult(True, "no readiness probe")
        deadline = time.monotonic() + timeout
        while True:
            result = probe_once(self.netns, pod.ip, pod.container, probe, pod.mounts)
            if result.ok:
                return result
            if pod.proc.popen.poll() is not None:
                return ProbeResult(False, f"{result.detail}; the process exited {pod.proc.popen.returncode}:\n"
                                          f"{pod.proc.tail()}")
            if time.monotonic() > deadline:
                return ProbeResult(False, f"{result.detail} after {timeout:.0f} s:\n{pod.proc.tail()}")
            time.sleep(1)

    def probe(self, pod: Pod, kind: str) -> ProbeResult:
        assert self.netns is not None
        return probe_once(self.netns, pod.ip, pod.container, pod.container[kind], pod.mounts)

    # -- bootstrap Jobs --------------------------------------------------------------------------------------
    def run_step(self, component: str, step: dict[str, Any]) -> StepRun:
        """One bootstrap step as its Job runs it: the rendered script, SECRET_* env, /etc/<component>/, the SA token."""
        assert self.netns is not None
        r = self.rendered[component]
        job_dir = self.root / "jobs" / f"{component}-{step['name']}"
        job_dir.mkdir(parents=True, exist_ok=True)
        (job_dir / "script.sh").write_text(step["rendered"])
        mounts = [Mount(job_dir, "/bootstrap"), Mount(self._etc_dir(r), f"/etc/{component}")]
        env = base_env()
        for item in secret_env(r.comp.values):
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = self.secret_values[(ref["name"], ref["key"])]
        if (r.comp.values.get("bootstrap") or {}).get("serviceAccount"):
            mounts.append(Mount(self.root / "serviceaccount", SERVICE_ACCOUNT_DIR))
            env.update(KUBERNETES_SERVICE_HOST=KUBE_API_IP, KUBERNETES_SERVICE_PORT="443")
        result = self.netns.run(["/bin/bash", "/bootstrap/script.sh"], mounts=mounts, env=env,
                                timeout=float(step.get("timeout") or 600))
        run = StepRun(component, step["name"], result.returncode, result.stdout + result.stderr)
        self.steps.append(run)
        self.project_secrets()
        return run

    def run_cronjob(self, component: str, name: str) -> StepRun:
        """One run of a rendered CronJob's Job, as the kubelet runs its pod: the container's command and env, its
        volumes, its ServiceAccount's token; then the kubelet's sync of the Secrets it wrote into mounted volumes."""
        assert self.netns is not None
        r = self.rendered[component]
        cron = next(o for o in r.of_kind("CronJob") if o["metadata"]["name"] == name)
        spec = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        container = spec["containers"][0]
        mounts = self.pod_mounts(r, name, spec, container)
        env = {**base_env(), **container_env(container, self.secret_values)}
        if spec.get("serviceAccountName"):
            mounts.append(Mount(self.root / "serviceaccount", SERVICE_ACCOUNT_DIR))
            env.update(KUBERNETES_SERVICE_HOST=KUBE_API_IP, KUBERNETES_SERVICE_PORT="443")
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        result = self.netns.run(argv, mounts=mounts, env=env,
                                timeout=float(cron["spec"]["jobTemplate"]["spec"].get("activeDeadlineSeconds") or 600))
        run = StepRun(component, f"cronjob/{name}", result.returncode, result.stdout + result.stderr)
        self.project_secrets()
        return run

    def client(self, *args: str, project: str = "admin", timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`openstack <args>` as the cloud admin from inside the cluster (internal endpoints)."""
        assert self.netns is not None
        keystone = self.rendered["keystone"].comp.values
        env = {
            **base_env(),
            "OS_AUTH_URL": "http://keystone-api.openstack.svc.cluster.local:5000/v3",
            "OS_IDENTITY_API_VERSION": "3", "OS_INTERFACE": "internal", "OS_REGION_NAME": "RegionOne",
            "OS_USERNAME": keystone["admin"]["user"], "OS_PROJECT_NAME": project,
            "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default",
            "OS_PASSWORD": self.secret_values[(keystone["bootstrap"]["secrets"]["admin"]["name"],
                                               keystone["bootstrap"]["secrets"]["admin"]["key"])],
        }
        return self.netns.run(["openstack", *args], env=env, timeout=timeout)

    def stop(self) -> None:
        if self.netns is not None:
            self.netns.stop()

    def logs(self) -> Iterator[tuple[str, str]]:
        if self.netns is not None:
            for proc in self.netns.procs:
                yield proc.name, proc.tail(80)


def _tls(cafile: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile)


def _dns_names(service: str, namespace: str, ip: str) -> dict[str, str]:
    return {n: ip for n in (service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
                             f"{service}.{namespace}.svc.cluster.local")}


def dump(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False)


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
