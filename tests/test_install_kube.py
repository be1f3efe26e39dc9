"""The control plane's builder: cache entries are keyed by everything that decides the bytes, checked by
sha256 on every run, and a present entry is linked without building."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("install_kube", ROOT / "scripts" / "install_kube.py")
assert spec and spec.loader
install_kube = importlib.util.module_from_spec(spec)
sys.modules["install_kube"] = install_kube  # dataclasses look their module up there
spec.loader.exec_module(install_kube)


def fake_entry(directory: Path) -> Path:
    directory.mkdir(parents=True)
    for binary in install_kube.BINARIES:
        (directory / binary.name).write_bytes(f"#!/bin/sh\necho {binary.name}\n".encode())
    manifest = {"sha256": {b.name: install_kube.sha256_of(directory / b.name) for b in install_kube.BINARIES}}
    (directory / install_kube.MANIFEST).write_text(json.dumps(manifest))
    return directory


def test_every_staging_module_is_replaced_by_its_published_release() -> None:
    gomod = (ROOT / "tools" / "kube" / "go.mod").read_text()
    replaces = [line.split() for line in gomod.splitlines() if "=>" in line]
    assert len(replaces) >= 30
    for left, _, right, version in replaces:
        assert left == right and left.startswith("k8s.io/") and version == "v0.35.4", (left, right, version)
    assert "k8s.io/kubernetes v1.35.4" in gomod
    assert "go.etcd.io/etcd/server/v3 v3.6.5" in gomod
    assert "sigs.k8s.io/kwok v0.8.0" in (ROOT / "tools" / "kube" / "kwok" / "go.mod").read_text()


def test_the_key_follows_go_sum_versions_and_toolchain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "kube"
    shutil.copytree(ROOT / "tools" / "kube", module)
    monkeypatch.setattr(install_kube, "MODULE_DIR", module)
    monkeypatch.setattr(install_kube, "KWOK_MODULE_DIR", module / "kwok")
    key = install_kube.cache_key("go1.26.8")
    assert key == install_kube.cache_key("go1.26.8")
    assert key != install_kube.cache_key("go1.26.9")
    with (module / "go.sum").open("a") as fh:
        fh.write("example.com/x v1.0.0 h1:AAAA=\n")
    assert install_kube.cache_key("go1.26.8") != key
    monkeypatch.setattr(install_kube, "KWOK_VERSION", "v0.7.0")
    assert install_kube.cache_key("go1.26.8") != key


def test_verify_accepts_the_recorded_binaries_and_refuses_a_tampered_one(tmp_path: Path) -> None:
    entry = fake_entry(tmp_path / "entry")
    assert install_kube.verify(entry)
    (entry / "kube-apiserver").write_bytes(b"something else")
    with pytest.raises(install_kube.InstallError, match="differs from the recorded"):
        install_kube.verify(entry)
    assert not install_kube.verify(tmp_path / "no-such-entry")


def test_a_present_entry_is_linked_without_building(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(install_kube, "go_version", lambda go: "go1.26.8")
    monkeypatch.setattr(install_kube.shutil, "which", lambda name: f"/usr/bin/{name}")

    def no_build(*args: Any) -> None:
        raise AssertionError("built although the cache had the entry")

    monkeypatch.setattr(install_kube, "build", no_build)
    cache, dest = tmp_path / "cache", tmp_path / "dest"
    entry = fake_entry(cache / f"{install_kube.KUBE_VERSION}-{install_kube.cache_key('go1.26.8')}")
    link = install_kube.install(cache, dest)
    assert link == dest / install_kube.KUBE_VERSION and link.resolve() == entry.resolve()
    assert (link / "kwok").is_file()
    assert "present and checked" in capsys.readouterr().out
    assert install_kube.install(cache, dest) == link  # again: same link, still no build


def test_a_missing_go_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert install_kube.main(["--cache", str(tmp_path), "--dest", str(tmp_path / "d"), "--go", "no-such-go"]) == 2
    assert "`no-such-go` not found" in capsys.readouterr().err


@pytest.mark.parametrize(("package", "name"), [
    ("k8s.io/kubernetes/cmd/kube-apiserver", "kube-apiserver"),
    ("go.etcd.io/etcd/server/v3", "server"),
    ("sigs.k8s.io/kwok/cmd/kwok", "kwok"),
    ("example.com/tool/v2", "tool"),
    ("example.com/tool/v1", "v1"),
])
def test_the_output_name_is_what_go_build_writes_into_a_directory(package: str, name: str) -> None:
    assert install_kube._output_name(package) == name


def test_a_second_install_waits_for_the_first_and_uses_its_build(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # CI starts `make kube` in the background and `make test` reaches the same target while it builds.
    import threading
    import time

    monkeypatch.setattr(install_kube, "go_version", lambda go: "go1.26.8")
    monkeypatch.setattr(install_kube.shutil, "which", lambda name: f"/usr/bin/{name}")
    builds: list[float] = []
    building = threading.Event()

    def slow_build(go: str, out: Path) -> dict[str, float]:
        builds.append(time.monotonic())
        building.set()
        time.sleep(0.5)
        for binary in install_kube.BINARIES:
            (out / binary.name).write_bytes(binary.name.encode())
        return {}

    monkeypatch.setattr(install_kube, "build", slow_build)
    cache = tmp_path / "cache"
    first = threading.Thread(target=install_kube.install, args=(cache, tmp_path / "dest1"))
    first.start()
    assert building.wait(10)
    link = install_kube.install(cache, tmp_path / "dest2")  # blocks on the lock until the first is done
    first.join(10)
    assert len(builds) == 1, "the second install built too"
    assert (link / "kube-apiserver").read_bytes() == b"kube-apiserver"
    assert (tmp_path / "dest1" / install_kube.KUBE_VERSION).resolve() == link.resolve()
