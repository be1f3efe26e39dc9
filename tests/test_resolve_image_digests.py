"""scripts/resolve_image_digests.py against a registry stand-in over HTTP on loopback (the v2 API's token
challenge, HEAD on a manifest, Docker-Content-Digest). No real registry is reachable here: what a real
registry adds (redirects, rate limits, credentials) is not exercised."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("resolve_image_digests", ROOT / "scripts" / "resolve_image_digests.py")
assert spec and spec.loader
resolver = importlib.util.module_from_spec(spec)
sys.modules["resolve_image_digests"] = resolver  # dataclasses look their module up
spec.loader.exec_module(resolver)

DIGEST = "sha256:" + "5a" * 32
TOKEN = "anonymous-pull-token"


class Registry(BaseHTTPRequestHandler):
    """One image, `airshipit/keystone:2026.2-ubuntu_noble`, behind an anonymous bearer token."""

    accepts: list[str] = []

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if (
            url.path == "/token"
            and query.get("service") == ["stand-in"]
            and query.get("scope", [""])[0].endswith(":pull")
        ):
            body = json.dumps({"token": TOKEN}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self) -> None:
        host = self.headers["Host"]
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            repo = self.path.split("/v2/", 1)[1].rsplit("/manifests/", 1)[0]
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Bearer realm="http://{host}/token",service="stand-in",'
                                                 f'scope="repository:{repo}:pull"')  # fmt: skip
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        Registry.accepts.append(self.headers.get("Accept", ""))
        if self.path == "/v2/airshipit/keystone/manifests/2026.2-ubuntu_noble":
            self.send_response(200)
            self.send_header("Docker-Content-Digest", DIGEST)
        else:
            self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def registry() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("ref", "want"),
    [
        ("quay.io/airshipit/keystone:2026.2", ("quay.io", "airshipit/keystone", "2026.2")),
        ("rabbitmq:3.13.7-management", (resolver.DOCKER_HUB, "library/rabbitmq", "3.13.7-management")),
        ("docker.io/library/memcached", (resolver.DOCKER_HUB, "library/memcached", "latest")),
        ("localhost:5000/keystone:x", ("localhost:5000", "keystone", "x")),
        (
            "registry.k8s.io/ingress-nginx/controller:v1.11.3",
            ("registry.k8s.io", "ingress-nginx/controller", "v1.11.3"),
        ),
    ],
)
def test_references_parse_as_registry_repository_tag(ref: str, want: tuple[str, str, str]) -> None:
    r = resolver.Ref.parse(ref)
    assert (r.registry, r.repository, r.tag) == want


def test_prints_then_writes_the_pinned_references_keeping_the_file(registry: str, tmp_path: Path) -> None:
    ref = f"{registry}/airshipit/keystone:2026.2-ubuntu_noble"
    values = tmp_path / "keystone.yaml"
    original = (f"# Shared by every cluster\nimages:\n  tags:\n    keystone_api: {ref}  # the API\n"
                f"    keystone_db_sync: \"{ref}\"\n    pinned: {ref}@{DIGEST}\n")  # fmt: skip
    values.write_text(original)
    assert resolver.main([str(values)]) == 0
    assert values.read_text() == original  # without --write nothing changes
    assert Registry.accepts and Registry.accepts[-1].startswith("application/vnd.oci.image.index.v1+json")
    assert resolver.main(["--write", str(values)]) == 0
    assert values.read_text() == original.replace(f"{ref}  #", f"{ref}@{DIGEST}  #").replace(
        f'"{ref}"', f'"{ref}@{DIGEST}"'
    )


def test_an_unknown_tag_is_reported_and_nothing_is_written(registry: str, tmp_path: Path, capsys: Any) -> None:
    values = tmp_path / "nova.yaml"
    original = f"images:\n  tags:\n    nova_api: {registry}/airshipit/nova:no-such-tag\n"
    values.write_text(original)
    assert resolver.main(["--write", str(values)]) == 1
    assert values.read_text() == original
    assert "HTTP 404" in capsys.readouterr().err
