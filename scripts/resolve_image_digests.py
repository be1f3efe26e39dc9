#!/usr/bin/env python3
"""Pin the image tags of values files by digest, asking each registry (Docker Registry HTTP API v2) with httpx.

    scripts/resolve_image_digests.py values/_common/*.yaml            # print `<ref> -> <ref>@sha256:…`
    scripts/resolve_image_digests.py --write values/_common/*.yaml    # rewrite those references in place

Reads every string under `images.tags` of each file; a reference that already carries a digest is left alone.
The digest is the one the registry serves for the tag (`Docker-Content-Digest` of a HEAD on the manifest, asking
for an image index first, so a multi-architecture image is pinned as a whole). Anonymous pulls only: a registry
that wants credentials answers 401 and the reference is reported, not pinned. `--write` replaces the reference's
text in the file, so comments and layout stay. Review the diff, commit it, then set `require_image_digests: true`
in the cluster's cluster.yaml (values/README.md, "Pinning images").

Small on purpose and not run against a real registry where it was written (no registry access there); its
tests drive it against a registry stand-in over HTTP on loopback.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
DOCKER_HUB = "registry-1.docker.io"
# Registries spoken to over plain HTTP (as docker does for localhost): a local mirror, the tests' stand-in.
PLAIN_HTTP = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class Ref:
    registry: str
    repository: str
    tag: str

    @classmethod
    def parse(cls, ref: str) -> Ref:
        name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
        first, _, rest = name.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            registry, repository = first, rest
        else:
            registry, repository = DOCKER_HUB, name if "/" in name else f"library/{name}"
        if registry == "docker.io":
            registry = DOCKER_HUB
        return cls(registry, repository, tag or "latest")

    @property
    def base(self) -> str:
        host = self.registry.split(":")[0]
        return f"{'http' if host in PLAIN_HTTP else 'https'}://{self.registry}"


def _bearer(client: httpx.Client, challenge: str) -> str | None:
    """An anonymous token for a `WWW-Authenticate: Bearer realm=…,service=…,scope=…` challenge."""
    if not challenge.lower().startswith("bearer "):
        return None
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    realm = params.pop("realm", None)
    if not realm:
        return None
    answer = client.get(realm, params=params)
    if answer.status_code != 200:
        return None
    body: dict[str, Any] = answer.json()
    token = body.get("token") or body.get("access_token")
    return str(token) if token else None


def resolve(client: httpx.Client, ref: str) -> str:
    """The sha256 digest the registry serves for `ref`'s tag; raises RuntimeError saying why not."""
    r = Ref.parse(ref)
    url = f"{r.base}/v2/{r.repository}/manifests/{r.tag}"
    headers = {"Accept": ACCEPT}
    answer = client.head(url, headers=headers)
    if answer.status_code == 401:
        token = _bearer(client, answer.headers.get("www-authenticate", ""))
        if token is None:
            raise RuntimeError(f"{ref}: the registry wants credentials (HTTP 401); resolve it where you can log in")
        headers["Authorization"] = f"Bearer {token}"
        answer = client.head(url, headers=headers)
    if answer.status_code != 200:
        raise RuntimeError(f"{ref}: HTTP {answer.status_code} from {url}")
    digest = answer.headers.get("docker-content-digest", "")
    if not DIGEST.match(digest):
        raise RuntimeError(f"{ref}: the registry sent no sha256 Docker-Content-Digest ({digest or 'none'})")
    return digest


def tags_of(path: Path) -> list[str]:
    data = yaml.safe_load(path.read_text()) or {}
    images = data.get("images") if isinstance(data, dict) else None
    tags = images.get("tags") if isinstance(images, dict) else None
    return [v for v in (tags or {}).values() if isinstance(v, str) and v and "@" not in v]


def main(argv: list[str] | None = None, client: httpx.Client | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--write", action="store_true", help="rewrite the references in the files")
    args = parser.parse_args(argv)
    failed = 0
    with client or httpx.Client(timeout=30, follow_redirects=True) as http:
        pinned: dict[str, str] = {}
        for path in args.files:
            text = path.read_text()
            for ref in dict.fromkeys(tags_of(path)):
                if ref not in pinned:
                    try:
                        pinned[ref] = f"{ref}@{resolve(http, ref)}"
                    except (RuntimeError, httpx.HTTPError) as exc:
                        print(f"{path}: {exc}", file=sys.stderr)
                        failed += 1
                        continue
                print(f"{path}: {ref} -> {pinned[ref]}")
                # Only whole references (followed by a line end, quote or space) are replaced.
                text = re.sub(re.escape(ref) + r"(?=[\s\"']|$)", pinned[ref], text, flags=re.MULTILINE)
            if args.write:
                path.write_text(text)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
