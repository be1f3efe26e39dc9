"""Request authentication: API bearer tokens (read/write), the Jenkins token, GitHub webhook signatures.

Contract:
- Tokens are kept only as sha256 digests; a request's token is hashed and compared with
  `hmac.compare_digest` against every configured digest (no early exit on the first byte that differs).
- `Role.write` implies `Role.read`. No configured token of a kind means no request can have that role: an
  unconfigured API is closed, never open (the routers answer 503 naming the missing setting).
- `verify_github_signature(secret, body, header)` checks `X-Hub-Signature-256: sha256=<hex>` against
  HMAC-SHA256(secret, raw body) in constant time.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
from collections.abc import Iterable

from pydantic import SecretStr


class Role(enum.IntEnum):
    read = 1
    write = 2


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _matches(token: str, digests: Iterable[bytes]) -> bool:
    probe = _digest(token)
    found = False
    for digest in digests:
        found |= hmac.compare_digest(probe, digest)
    return found


class TokenAuth:
    """Bearer tokens of the read API and of write endpoints, stored hashed."""

    def __init__(self, read_tokens: Iterable[SecretStr], write_tokens: Iterable[SecretStr]) -> None:
        self._read = tuple(_digest(t.get_secret_value()) for t in read_tokens)
        self._write = tuple(_digest(t.get_secret_value()) for t in write_tokens)

    @property
    def configured(self) -> bool:
        return bool(self._read or self._write)

    @property
    def writable(self) -> bool:
        """Whether any write token is configured (without one, write endpoints are disabled)."""
        return bool(self._write)

    def role(self, token: str) -> Role | None:
        if _matches(token, self._write):
            return Role.write
        if _matches(token, self._read):
            return Role.read
        return None


class SingleToken:
    """One shared token (Jenkins), stored hashed."""

    def __init__(self, token: SecretStr) -> None:
        self._digest = _digest(token.get_secret_value())

    def matches(self, token: str) -> bool:
        return _matches(token, (self._digest,))


def bearer_token(authorization: str | None) -> str | None:
    """The token of `Authorization: Bearer <token>` (scheme case-insensitive), else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def basic_password(authorization: str | None) -> str | None:
    """The password of `Authorization: Basic ...` (the status page lets a browser send the token so)."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, sep, password = decoded.partition(":")
    return password if sep and password else None


SIGNATURE_PREFIX = "sha256="


def github_signature(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub sends for `body`."""
    return SIGNATURE_PREFIX + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_github_signature(secret: str, body: bytes, header: str | None) -> bool:
    if not header or not header.startswith(SIGNATURE_PREFIX):
        return False
    expected = github_signature(secret, body).encode("ascii")
    # Header values arrive latin-1 decoded; compare bytes so non-ASCII input is a mismatch, not a TypeError.
    return hmac.compare_digest(expected, header.strip().encode("latin-1", errors="replace"))
