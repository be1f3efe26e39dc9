#!/usr/bin/env python3
"""The post-receive hook of the demo's bare "remote": tells the service about a push as GitHub would.

Usage (git runs it with `<old> <new> <ref>` lines on stdin): demo_webhook.py HOOK_URL SECRET_FILE

Each pushed ref becomes one signed `push` webhook (`X-Hub-Signature-256`, HMAC-SHA256 of the body with the
shared secret). The answer is printed, so `git push` shows it as `remote: ...` lines. A failed delivery
never fails the push, as on GitHub: the service's polling still finds the commit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path


def deliver(url: str, secret: bytes, old: str, new: str, ref: str) -> str:
    body = json.dumps({"ref": ref, "before": old, "after": new, "deleted": set(new) == {"0"}}).encode()
    request = urllib.request.Request(
        url,
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-Hub-Signature-256": "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest(),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return f"{answer.status} {answer.read().decode(errors='replace')}"
    except urllib.error.HTTPError as exc:
        return f"{exc.code} {exc.read().decode(errors='replace')}"
    except OSError as exc:
        return f"not delivered ({exc})"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    url, secret_file = argv
    secret = Path(secret_file).read_bytes().strip()
    for line in sys.stdin:
        old, new, ref = line.split()
        print(f"webhook: push {ref} {new[:12]} -> {deliver(url, secret, old, new, ref)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
