"""The one redaction function: every log line, API answer, CLI line and stored record goes through it.

Contract:
- `redact(text, secrets)` replaces every occurrence of a secret with `***`. A multi-line secret (a PEM under a
  `*_key` key) is also masked line by line, with and without its trailing newline, and in its JSON-escaped and
  URL-encoded forms: tools print such values re-indented, wrapped, escaped or quoted, never as one exact string.
- `assignments=True` also masks `password: x`, `token=x`, `--set secret=x`… (used on helm/kubectl output,
  whose rendered manifests show values we were never told about). Off for our own messages, which name keys.
- Mask first, then cut: `redact_cut(text, limit, …)` masks the whole text, then shortens it, so a cut never
  leaves part of a secret unmasked; callers must never truncate before calling.
- `Redactor` holds a prepared set of secrets (longest first, so a secret containing another is masked whole).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import quote, urlsplit

REDACTED = "***"
# A line shorter than this in a multi-line secret ("-----", "}") is not worth masking everywhere.
MIN_LINE = 6
# `password: x`, `token=x`, `--set secret=x`… in a tool's own output (e.g. a rendered manifest in an error).
_SECRET_ASSIGN = re.compile(
    r"(?i)\b([\w.-]*(?:password|passwd|token|secret|[_-]key)[\w.-]*)(\"?\s*[:=]\s*\"?)([^\s\",]+)"
)


def variants(secrets: Iterable[str]) -> list[str]:
    """Every form in which a secret may show up in text, longest first."""
    out: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        for form in (secret, secret.rstrip("\r\n"), json.dumps(secret)[1:-1], quote(secret, safe="")):
            if form:
                out.add(form)
        if "\n" in secret.strip("\r\n"):
            for line in secret.splitlines():
                line = line.strip()
                if len(line) >= MIN_LINE:
                    out.add(line)
    return sorted(out, key=len, reverse=True)


def url_secrets(url: str) -> list[str]:
    """Credentials inside a URL (`https://user:pass@host`, `https://<token>@host`), to be masked."""
    try:
        parts = urlsplit(url)
        username, password = parts.username, parts.password
    except ValueError:
        return []
    out: list[str] = []
    if password:
        out.append(password)
    if username and (password or len(username) >= 16):  # a lone long user name is a token
        out.append(username)
    return out


def redacted_url(url: str) -> str:
    """`url` with its user and password replaced by `***` (for messages naming the remote)."""
    try:
        parts = urlsplit(url)
        if not (parts.username or parts.password):
            return url
        netloc = "***@" + parts.netloc.rsplit("@", 1)[1]
        return parts._replace(netloc=netloc).geturl()
    except ValueError:
        return redact(url, url_secrets(url))


class Redactor:
    """A prepared set of secrets; calling it redacts a text (None and "" pass through)."""

    def __init__(self, secrets: Iterable[str] = (), *, assignments: bool = False) -> None:
        self.secrets = tuple(s for s in secrets if s)
        self.assignments = assignments
        self._forms = variants(self.secrets)

    def with_secrets(self, more: Iterable[str]) -> Redactor:
        return Redactor((*self.secrets, *more), assignments=self.assignments)

    def text(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        if self.assignments:
            text = _SECRET_ASSIGN.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
        return text

    def __call__(self, text: str | None) -> str | None:
        return self.text(text) if text else text

    def cut(self, text: str, limit: int) -> str:
        """Mask, then shorten to `limit` characters."""
        return cut(self.text(text), limit)


def redact(text: str, secrets: Iterable[str] = (), *, assignments: bool = False) -> str:
    return Redactor(secrets, assignments=assignments).text(text)


def cut(text: str, limit: int) -> str:
    """Shorten already-masked text; never call on unmasked text."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def redact_cut(text: str, limit: int, secrets: Iterable[str] = (), *, assignments: bool = False) -> str:
    return cut(redact(text, secrets, assignments=assignments), limit)
