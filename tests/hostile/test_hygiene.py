"""Finding 9: `/docs` and `/redoc` are off by default; with `DM_API_DOCS=true` they load every asset from the
service itself (no CDN, no third-party script). The status page sends a Content-Security-Policy that allows
only its own inline style, and every answer (JSON, errors, the page) sends `X-Content-Type-Options: nosniff`."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable

import pytest

from tests.hostile.conftest import Remote, Service
from tests.servicelib import READ_TOKEN

pytestmark = [pytest.mark.helm, pytest.mark.slow]


def test_docs_are_off_by_default_and_headers_are_sent(start: Callable[..., Service], remote: Remote) -> None:
    svc = start()
    writes = svc.writes()
    with svc.client(None) as c:
        for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
            assert c.get(path).status_code == 404, path
        assert c.get("/openapi.json").status_code == 200
        answers = [
            c.get("/healthz"),
            c.get("/runs"),
            c.get("/runs", headers={"Authorization": f"Bearer {READ_TOKEN}"}),
            c.get("/nope"),
            c.post("/runs", content=b"x" * 2_000_000),
            c.get("/"),
        ]
    for r in answers:
        assert r.headers["x-content-type-options"] == "nosniff", (r.request.url, r.status_code)
        assert "content-security-policy" in r.headers and r.headers["referrer-policy"] == "no-referrer"
    with svc.client() as c:
        page = c.get("/")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    style = re.search(r"<style>(.*?)</style>", page.text, re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in csp and "default-src 'none'" in csp and "script" not in csp
    assert "<script" not in page.text and page.headers["x-frame-options"] == "DENY"
    assert svc.writes() == writes
    svc.assert_healthy()


def test_docs_when_enabled_load_nothing_from_elsewhere(start: Callable[..., Service], remote: Remote) -> None:
    svc = start(api_docs=True)
    with svc.client(None) as c:
        for path in ("/docs", "/redoc"):
            page = c.get(path)
            assert page.status_code == 200 and "text/html" in page.headers["content-type"]
            urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", page.text)
            urls += re.findall(r"""url:\s*['"]([^'"]+)['"]""", page.text)
            assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
            assert "cdn" not in page.text.lower() and "fonts.googleapis" not in page.text
            assert "https://" not in page.headers["content-security-policy"]
            for url in urls:
                asset = c.get(url)
                assert asset.status_code == 200 and len(asset.content) > 0, url
                assert asset.headers["x-content-type-options"] == "nosniff"
    svc.assert_healthy()
