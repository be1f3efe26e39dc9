#!/usr/bin/env python3
"""Install one OpenStack release's service packages into their own venv (idempotent).

The test tier under tests/openstack/ runs the real services from these packages on loopback, with the
configs and bootstrap scripts the charts render. The venv lives outside the clone, in
``~/.cache/deploy-manager/openstack/<release>/<key>/`` where ``<key>`` is a hash of the release, the
Python version and the constraints file kept in the repo (``scripts/openstack/<release>-constraints.txt``),
so a fresh clone (CI) reuses it; ``.tools/openstack/<release>`` links to it. A venv is reused only
when its marker names the same key and every pinned distribution is installed at its pinned version;
anything else is rebuilt from scratch. The packages come from PyPI through pip, nothing else.

The venv's directory layout is the one openstack-helm's (LOCI) images use under ``/var/lib/openstack``:
``bin/`` with the service commands and ``etc/<service>/`` with the packaged paste/policy files, so the
tier bind-mounts it there and the charts' paths resolve unchanged.
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The release the image tags in values/_common name (tests/openstack checks they agree).
RELEASE = "2026.2"
CONSTRAINTS_DIR = ROOT / "scripts" / "openstack"
# The services and tools the tier runs; the versions are pinned in the constraints file.
PACKAGES = (
    "keystone",
    "glance",
    "openstack-placement",
    "nova",
    "neutron",
    "cinder",
    "horizon",
    "python-openstackclient",
    "osc-placement",
    "PyMySQL",
    "python-memcached",
    # horizon's cache (Django's PyMemcacheCache backend, the chart's CACHES) imports it; nothing else pulls it in.
    "pymemcache",
    "uWSGI",
    # cinder's option namespace (oslo-config-validator) imports its GCS backup driver.
    "google-api-python-client",
)
MARKER = ".deploy-manager-openstack.json"
# The venv's own tooling (whatever `python -m venv` brings), not part of the pins.
UNPINNED = {"pip", "setuptools", "wheel"}
# Imported once after install and on every reuse: a venv that cannot import these is rebuilt.
SMOKE_IMPORTS = ("keystone", "glance", "placement", "nova", "neutron", "cinder", "openstack_dashboard",
                 "openstackclient", "pymysql")


class InstallError(RuntimeError):
    pass


def constraints_file(release: str) -> Path:
    return CONSTRAINTS_DIR / f"{release}-constraints.txt"


def read_pins(path: Path) -> dict[str, str]:
    """`name==version` lines of a constraints file, names normalised (PEP 503)."""
    pins: dict[str, str] = {}
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("===") if "===" in line else line.partition("==")
        if not sep or not name.strip() or not version.strip():
            raise InstallError(f"{path}:{lineno}: expected name==version, got {raw!r}")
        pins[normalise(name)] = version.strip()
    return pins


def normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def cache_key(release: str, constraints: bytes) -> str:
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    digest = hashlib.sha256()
    for part in (release.encode(), python.encode(), "\n".join(PACKAGES).encode(), constraints):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


def default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "deploy-manager" / "openstack"


def installed_versions(venv: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json;"
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    # -I and cwd=/: only the venv's own site-packages (not a checkout's *.egg-info in the working directory).
    out = subprocess.run([str(venv / "bin" / "python"), "-I", "-c", code], capture_output=True, text=True,
                         check=True, cwd="/")
    return {normalise(k): v for k, v in json.loads(out.stdout).items()}


def check_venv(venv: Path, key: str, pins: dict[str, str]) -> str | None:
    """None when `venv` is a finished install of exactly these pins, else why not."""
    marker = venv / MARKER
    if not marker.is_file():
        return "no install marker"
    try:
        recorded = json.loads(marker.read_text()).get("key")
    except (OSError, ValueError):
        return "unreadable install marker"
    if recorded != key:
        return f"marker key {recorded} is not {key}"
    try:
        have = installed_versions(venv)
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"its python does not run: {exc}"
    # Constraints pin versions, not presence: every installed distribution must be at its pin (no drift,
    # nothing unpinned), and every requested package must be there.
    wrong = sorted(f"{n} {v} (pinned {pins.get(n)})" for n, v in have.items()
                   if n not in UNPINNED and pins.get(n) != v)
    missing = sorted(p for p in PACKAGES if normalise(p) not in have)
    if wrong or missing:
        return "differs from the constraints: " + ", ".join([*wrong[:5], *(f"{p} missing" for p in missing)])
    smoke = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c", "import " + ",".join(SMOKE_IMPORTS)], capture_output=True, text=True,
        cwd="/",
    )
    if smoke.returncode != 0:
        return "imports fail: " + smoke.stderr.strip().splitlines()[-1:][0] if smoke.stderr.strip() else "imports fail"
    return None


def build(venv: Path, constraints: Path, key: str) -> None:
    """A fresh venv at `venv`. The marker is written last, so an interrupted build is never reused.

    Built in place (console scripts carry the venv's path in their shebang, so a venv cannot be moved).
    """
    if venv.exists():
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-c", str(constraints), *PACKAGES], check=True)
    (venv / MARKER).write_text(json.dumps({"key": key, "constraints": constraints.name}) + "\n")


def link(dest: Path, venv: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() and Path(os.readlink(dest)) == venv:
        return
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(venv)
    if dest.exists() and not dest.is_symlink():
        shutil.rmtree(dest)
    os.replace(tmp, dest)


def install(release: str, dest: Path, cache: Path) -> Path:
    constraints = constraints_file(release)
    if not constraints.is_file():
        raise InstallError(f"no constraints file for release {release}: {constraints} is missing")
    pins = read_pins(constraints)
    key = cache_key(release, constraints.read_bytes())
    venv = cache / release / key
    cache.mkdir(parents=True, exist_ok=True)
    # CI starts `make openstack` in the background and `make test-openstack` reaches it later: the second
    # run waits here for the first to finish, then finds its venv.
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _build_unless_present(release, venv, key, pins, constraints)
    link(dest / release, venv)
    return venv


def _build_unless_present(release: str, venv: Path, key: str, pins: dict[str, str], constraints: Path) -> None:
    reason = check_venv(venv, key, pins)
    if reason is not None:
        started = time.monotonic()
        print(f"building the OpenStack {release} venv in {venv} ({reason})", flush=True)
        build(venv, constraints, key)
        reason = check_venv(venv, key, pins)
        if reason is not None:
            raise InstallError(f"the fresh venv {venv} {reason}")
        print(f"built in {time.monotonic() - started:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", default=RELEASE)
    parser.add_argument("--dest", type=Path, default=ROOT / ".tools" / "openstack")
    parser.add_argument("--cache", type=Path, default=default_cache())
    args = parser.parse_args(argv)
    try:
        install(args.release, args.dest, args.cache)
    except (InstallError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
