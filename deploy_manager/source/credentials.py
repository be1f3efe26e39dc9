"""Git credentials for the values repo: HTTPS token, SSH deploy key + known_hosts, CA bundle.

Contract:
- Credentials never travel in the URL: `split_url` takes user/password out of an `https://` URL (a legacy
  `DM_REPO_URL=https://<token>@host/...` keeps working), so neither the mirror's git config nor git's
  command line (which GitPython puts in its exceptions) ever holds them.
- The token reaches git only through the environment of the git process: a credential helper, set through
  `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n` (no config file is written), prints it from an
  environment variable and is scoped to the repo's own scheme://host, so a redirect elsewhere gets nothing.
- The SSH key, known_hosts and CA bundle are written to a private directory (0700, files 0600) that
  `GitAuth.close()` removes; ssh runs with `StrictHostKeyChecking=yes` and `BatchMode=yes`, so an unknown host
  or a missing credential fails at once instead of prompting.
- `redact(text)` replaces every credential in a message by `***`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

# The user name GitHub (and GitHub Enterprise) expect with an App installation token; a personal access
# token works with any user name, so this default fits both.
DEFAULT_USERNAME = "x-access-token"
# Environment variables the credential helper reads (only the git process and its helper see them).
_USER_ENV = "DM_GIT_AUTH_USERNAME"
_TOKEN_ENV = "DM_GIT_AUTH_TOKEN"
# Runs under /bin/sh; answers only `get`, so git's `store`/`erase` calls are no-ops.
_HELPER = (
    '!f() { test "$1" = get || exit 0; '
    f'printf "username=%s\\npassword=%s\\n" "${_USER_ENV}" "${_TOKEN_ENV}"; }}; f'
)


@dataclass(frozen=True, repr=False)
class GitCredentials:
    """What the settings say about authenticating to the values repo (all optional)."""

    username: str = DEFAULT_USERNAME
    token: str | None = None
    ssh_key: str | None = None
    known_hosts: str | None = None
    ca_bundle: str | None = None

    def __repr__(self) -> str:  # never print a credential, even in a traceback's locals
        given = [name for name in ("token", "ssh_key", "known_hosts", "ca_bundle") if getattr(self, name)]
        return f"GitCredentials(username={self.username!r}, given={given})"

    def secrets(self) -> list[str]:
        return [value for value in (self.token, self.ssh_key) if value]


def split_url(url: str) -> tuple[str, str | None, str | None]:
    """(url without credentials, user, password) for http(s) URLs; other URLs come back unchanged.

    An `ssh://git@host/…` or `git@host:…` user is a login name, not a secret, and stays.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not (parts.username or parts.password):
        return url, None, None
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return urlunsplit(parts._replace(netloc=netloc)), user, password


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class GitAuth:
    """Credentials made usable by git for one repo URL: `env` for every git process, `redact` for messages."""

    url: str  # the URL without credentials
    env: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    _dir: Path | None = None
    _finalizer: weakref.finalize | None = None  # type: ignore[type-arg]

    @classmethod
    def for_url(cls, url: str, credentials: GitCredentials | None = None) -> GitAuth:
        creds = credentials or GitCredentials()
        clean, url_user, url_password = split_url(url)
        auth = cls(url=clean)
        # Never wait for a person: no terminal prompt, no askpass program.
        auth.env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": ""})
        config: list[tuple[str, str]] = []

        token, username = creds.token, creds.username
        if token is None and (url_user or url_password):
            # Legacy URL credentials: `https://user:token@host` or `https://<token>@host`.
            username, token = (url_user or DEFAULT_USERNAME), (url_password or "")
            auth.secrets += [s for s in (url_password, url_user if not url_password else None) if s]
        origin = _origin(clean)
        if token is not None and origin is not None:
            auth.env[_USER_ENV] = username
            auth.env[_TOKEN_ENV] = token
            # An empty value first drops helpers from system/global config (a cache or store helper would
            # otherwise keep the token on disk); ours then answers for this scheme://host only.
            config += [("credential.helper", ""), (f"credential.{origin}.helper", _HELPER)]
        auth.secrets += creds.secrets()

        files = {"id_deploy": creds.ssh_key, "known_hosts": creds.known_hosts, "ca.pem": creds.ca_bundle}
        if any(files.values()):
            auth._dir = Path(tempfile.mkdtemp(prefix="dm-git-"))  # mkdtemp: mode 0700
            # Removed on close(), else when collected or at interpreter exit: a CLI run leaves no key behind.
            auth._finalizer = weakref.finalize(auth, shutil.rmtree, auth._dir, ignore_errors=True)
            written: dict[str, str] = {}
            for name, content in files.items():
                if content:
                    path = auth._dir / name
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "w", encoding="utf-8") as out:
                        # OpenSSH refuses a key whose last line has no newline (settings strip it).
                        out.write(content if content.endswith("\n") else content + "\n")
                    written[name] = str(path)
            if "ca.pem" in written:
                # The variable, not http.sslCAInfo: git lets GIT_SSL_CAINFO from the environment win over config.
                auth.env["GIT_SSL_CAINFO"] = written["ca.pem"]
            ssh = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=30"]
            if "id_deploy" in written:
                ssh += ["-i", written["id_deploy"], "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"]
            if "known_hosts" in written:
                ssh += ["-o", f"UserKnownHostsFile={written['known_hosts']}", "-o", "GlobalKnownHostsFile=/dev/null"]
            auth.env["GIT_SSH_COMMAND"] = shlex.join(ssh)
        elif "GIT_SSH_COMMAND" not in os.environ:  # a person's own ssh set-up wins on the command line
            auth.env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes -o ConnectTimeout=30"

        auth.env["GIT_CONFIG_COUNT"] = str(len(config))
        for i, (key, value) in enumerate(config):
            auth.env[f"GIT_CONFIG_KEY_{i}"] = key
            auth.env[f"GIT_CONFIG_VALUE_{i}"] = value
        return auth

    def redact(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret:
                text = text.replace(secret, "***")
        return text

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # runs the removal once, however often close() is called
        self._dir = None
