#!/usr/bin/env python3
"""Build the real Kubernetes control plane the cluster tests run on (idempotent; seconds when present).

What it builds, from the Go module proxy only (no binary downloads):

- ``kube-apiserver``, ``kube-controller-manager``, ``kube-scheduler`` v1.35.4 and ``etcd`` v3.6.5, from
  ``tools/kube/go.mod``: ``k8s.io/kubernetes`` maps its staging modules (``k8s.io/api``, …) to local
  directories, so that module requires it and replaces each staging module by its published v0.35.4.
  etcd is the version k8s.io/kubernetes v1.35.4 itself pins (so the API server's etcd client and the
  server are the pair Kubernetes tests), built from the same module graph: a real etcd, not kine,
  because the watch cache, compaction and resourceVersion semantics the tests exercise are etcd's.
- ``kwok`` v0.8.0 (fake nodes and pods), from ``tools/kube/kwok/go.mod`` (it needs newer k8s.io libraries).

The binaries are cached in ``~/.cache/deploy-manager/kube/<version>-<key>/`` (``key``: the versions, both
go.mod/go.sum files, the Go version and the link flags), with a ``manifest.json`` of their sha256 written
after the build and checked on every later run; ``.tools/kube/<version>`` is a symlink to that directory.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KUBE_VERSION = "v1.35.4"
ETCD_VERSION = "v3.6.5"
KWOK_VERSION = "v0.8.0"
MODULE_DIR = ROOT / "tools" / "kube"
KWOK_MODULE_DIR = MODULE_DIR / "kwok"
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "deploy-manager" / "kube"
DEFAULT_DEST = ROOT / ".tools" / "kube"
MANIFEST = "manifest.json"

# Without these the servers report v0.0.0-master, and helm refuses charts whose kubeVersion excludes it.
_MAJOR, _MINOR = KUBE_VERSION.lstrip("v").split(".")[:2]
_VERSION_VARS = {"gitVersion": KUBE_VERSION, "gitMajor": _MAJOR, "gitMinor": _MINOR, "gitTreeState": "clean",
                 "buildDate": "1970-01-01T00:00:00Z"}
LDFLAGS = " ".join(
    ["-s", "-w"]
    + [f"-X {pkg}.{var}={value}" for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
       for var, value in _VERSION_VARS.items()]
)

KWOK_LDFLAGS = "-s -w"  # kwok reports its own version; the k8s.io libraries' version is not what it serves


@dataclass(frozen=True)
class Binary:
    name: str
    package: str
    module_dir: Path


BINARIES = (
    Binary("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver", MODULE_DIR),
    Binary("kube-controller-manager", "k8s.io/kubernetes/cmd/kube-controller-manager", MODULE_DIR),
    Binary("kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler", MODULE_DIR),
    Binary("etcd", "go.etcd.io/etcd/server/v3", MODULE_DIR),
    Binary("kwok", "sigs.k8s.io/kwok/cmd/kwok", KWOK_MODULE_DIR),
)


class InstallError(RuntimeError):
    pass


def sha256_of(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def go_version(go: str) -> str:
    return subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout.strip()


def cache_key(goversion: str) -> str:
    """What decides the bytes we build: a change to any of it is a new cache entry, never a stale hit."""
    digest = hashlib.sha256()
    for part in (KUBE_VERSION, ETCD_VERSION, KWOK_VERSION, goversion, LDFLAGS, KWOK_LDFLAGS):
        digest.update(part.encode() + b"\0")
    for module in (MODULE_DIR, KWOK_MODULE_DIR):
        for name in ("go.mod", "go.sum"):
            digest.update((module / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def verify(directory: Path) -> bool:
    """True when ``directory`` holds every binary with the sha256 its manifest recorded; raise on a mismatch."""
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        return False
    manifest = json.loads(manifest_path.read_text())
    for binary in BINARIES:
        path = directory / binary.name
        expected = manifest.get("sha256", {}).get(binary.name)
        if expected is None or not path.is_file():
            return False
        actual = sha256_of(path)
        if actual != expected:
            raise InstallError(f"{path}: sha256 {actual} differs from the recorded {expected}; "
                               f"delete {directory} and run `make kube` again")
    return True


def _output_name(package: str) -> str:
    """The file `go build -o dir/` writes for ``package``: its last path element, a major-version suffix
    (``/v2`` and up, as in ``etcd/server/v3``) skipped, as cmd/go names it."""
    parts = package.split("/")
    last = parts[-1]
    major = last[1:].isdigit() and last[:1] == "v" and last[1:2] != "0" and last != "v1"
    return parts[-2] if len(parts) > 1 and major else last


def build(go: str, out: Path) -> dict[str, float]:
    """`go build` every binary into ``out``; returns seconds per module."""
    env = dict(os.environ, CGO_ENABLED="0")
    nice = ["nice", "-n", "15"] if shutil.which("nice") else []
    timings: dict[str, float] = {}
    for module in (MODULE_DIR, KWOK_MODULE_DIR):
        binaries = [b for b in BINARIES if b.module_dir == module]
        print(f"building {', '.join(b.name for b in binaries)} in {module.relative_to(ROOT)} "
              f"(go build, nice 15; a cold build takes tens of minutes on 2 cores)", flush=True)
        start = time.monotonic()
        # One `go build` for all of a module's commands: one action graph, so the packages they share compile
        # once and one command links while the next one's packages still compile.
        ldflags = LDFLAGS if module == MODULE_DIR else KWOK_LDFLAGS
        with tempfile.TemporaryDirectory(dir=out) as staging:
            cmd = [*nice, go, "build", "-trimpath", "-ldflags", ldflags, "-o", staging + os.sep,
                   *(b.package for b in binaries)]
            proc = subprocess.run(cmd, cwd=module, env=env)
            if proc.returncode != 0:
                raise InstallError(f"`go build` of {', '.join(b.package for b in binaries)} in {module} "
                                   f"exited {proc.returncode}")
            for binary in binaries:
                # `-o dir/` names each binary after its package's last element (etcd's is `server`).
                built = Path(staging) / _output_name(binary.package)
                if not built.is_file():
                    raise InstallError(f"`go build` left no {built.name} for {binary.package}")
                os.replace(built, out / binary.name)
        timings[str(module.relative_to(ROOT))] = time.monotonic() - start
        print(f"  done in {timings[str(module.relative_to(ROOT))]:.0f} s", flush=True)
    return timings


def install(cache: Path, dest: Path, go: str = "go") -> Path:
    """Make ``dest/<KUBE_VERSION>`` point at a verified build; build it first when the cache has none."""
    if shutil.which(go) is None:
        raise InstallError(f"`{go}` not found: the real control plane is built from Go modules (Go >= 1.26)")
    started = time.monotonic()
    key = cache_key(go_version(go))
    entry = cache / f"{KUBE_VERSION}-{key}"
    cache.mkdir(parents=True, exist_ok=True)
    # CI starts `make kube` in the background and `make test` reaches the same target later: the second
    # run waits here for the first, then finds its build, instead of building the same thing beside it.
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _build_unless_present(entry, key, go, started)
    dest.mkdir(parents=True, exist_ok=True)
    link = dest / KUBE_VERSION
    if not (link.is_symlink() and Path(os.readlink(link)) == entry):
        tmp_link = dest / f".{KUBE_VERSION}.tmp"
        tmp_link.unlink(missing_ok=True)
        tmp_link.symlink_to(entry)
        if link.exists() and not link.is_symlink():
            shutil.rmtree(link)
        os.replace(tmp_link, link)
    return link


def _build_unless_present(entry: Path, key: str, go: str, started: float) -> None:
    if verify(entry):
        print(f"kube {KUBE_VERSION} binaries present and checked in {entry} "
              f"({time.monotonic() - started:.1f} s)")
        return
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        timings = build(go, tmp)
        manifest = {
            "versions": {"kubernetes": KUBE_VERSION, "etcd": ETCD_VERSION, "kwok": KWOK_VERSION},
            "go": go_version(go),
            "key": key,
            "build_seconds": {k: round(v) for k, v in timings.items()},
            "sha256": {b.name: sha256_of(tmp / b.name) for b in BINARIES},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if entry.exists():
            shutil.rmtree(entry)  # an incomplete or unmanifested earlier attempt
        os.replace(tmp, entry)  # appears whole or not at all
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    size = sum(p.stat().st_size for p in entry.iterdir())
    print(f"built kube {KUBE_VERSION} binaries into {entry} in {time.monotonic() - started:.0f} s "
          f"({size / 1e6:.0f} MB)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    parser.add_argument("--go", default=os.environ.get("GO", "go"))
    args = parser.parse_args(argv)
    try:
        link = install(args.cache, args.dest, args.go)
    except (InstallError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"kube binaries: {link}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
