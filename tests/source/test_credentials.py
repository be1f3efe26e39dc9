"""Git credentials end to end: a real sshd and a real `git http-backend` behind TLS with its own CA, on loopback.

What must hold: the mirror clones and fetches with a deploy key or a token; neither the token nor the key is
ever written to the mirror (config included) nor shown in an error; a wrong host key, CA or token fails fast
with one clear line, never a prompt.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy_manager.config import GitSettings, Settings
from deploy_manager.models.errors import SourceError
from deploy_manager.source.credentials import GitAuth, GitCredentials, split_url
from deploy_manager.source.git import GitSource
from tests.corelib import commit, git, init_repo, write
from tests.source.gitservers import SSHD, HttpsServer, SshServer, https_server, keypair, ssh_server

TOKEN = "ghp_s3cr3tT0kenValue0123456789abcdef"
USER = "x-access-token"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare repository `/deploy.git` under a served root, with one commit on main."""
    root = tmp_path_factory.mktemp("served")
    work = init_repo(root / "work")
    write(work / "values" / "dev" / "cluster.yaml", "namespace: dev\ncomponents: {}\n")
    commit(work, "first")
    git(root, "clone", "--quiet", "--bare", str(work), str(root / "deploy.git"))
    return root


@pytest.fixture(scope="module")
def sshd(served: Path) -> Iterator[SshServer]:
    if not os.access(SSHD, os.X_OK):
        pytest.skip("sshd not installed (Debian: apt-get install openssh-server)")
    with ssh_server(served) as server:
        yield server


@pytest.fixture(scope="module")
def https(served: Path) -> Iterator[HttpsServer]:
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    with https_server(served, username=USER, token=TOKEN) as server:
        yield server


def _new_commit(served: Path) -> str:
    work = served / "work"
    write(work / "README.md", f"change {os.urandom(4).hex()}\n")
    sha = commit(work, "next")
    git(work, "push", "--quiet", str(served / "deploy.git"), "HEAD:main")
    return sha


def _nothing_holds(secret: str, where: Path) -> None:
    for path in where.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), f"{path} holds the secret"


# --- pure parts ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "clean", "user", "password"),
    [
        ("https://ghe.example.com/o/r.git", "https://ghe.example.com/o/r.git", None, None),
        ("https://tok@ghe.example.com/o/r.git", "https://ghe.example.com/o/r.git", "tok", None),
        ("https://u:p%40ss@ghe.example.com:8443/o/r.git", "https://ghe.example.com:8443/o/r.git", "u", "p@ss"),
        ("ssh://git@ghe.example.com/o/r.git", "ssh://git@ghe.example.com/o/r.git", None, None),
        ("git@github.com:o/r.git", "git@github.com:o/r.git", None, None),
    ],
)
def test_split_url(url: str, clean: str, user: str | None, password: str | None) -> None:
    assert split_url(url) == (clean, user, password)


def test_token_travels_only_in_the_environment_scoped_to_the_repo_host() -> None:
    auth = GitAuth.for_url("https://ghe.example.com/o/r.git", GitCredentials(token=TOKEN))
    try:
        assert auth.url == "https://ghe.example.com/o/r.git"
        config = {auth.env[f"GIT_CONFIG_KEY_{i}"]: auth.env[f"GIT_CONFIG_VALUE_{i}"]
                  for i in range(int(auth.env["GIT_CONFIG_COUNT"]))}  # fmt: skip
        assert config["credential.helper"] == ""  # system/global helpers (a store on disk) dropped
        assert "credential.https://ghe.example.com.helper" in config
        assert all(TOKEN not in value for value in config.values())
        assert auth.env["GIT_TERMINAL_PROMPT"] == "0"
        assert auth.redact(f"fatal: bad {TOKEN}") == "fatal: bad ***"
        assert TOKEN not in repr(GitCredentials(token=TOKEN))
    finally:
        auth.close()


def test_key_files_are_private_and_removed_on_close(tmp_path: Path) -> None:
    key, _ = keypair(tmp_path / "k")
    creds = GitCredentials(ssh_key=key.rstrip("\n"), known_hosts="h ssh-ed25519 AAA")
    auth = GitAuth.for_url("ssh://git@h/r.git", creds)
    assert auth._dir is not None
    folder = auth._dir
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    key_file = folder / "id_deploy"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().endswith("\n")  # OpenSSH refuses a key without its final newline
    assert "StrictHostKeyChecking=yes" in auth.env["GIT_SSH_COMMAND"]
    auth.close()
    assert not folder.exists()


# --- settings ------------------------------------------------------------------------------------------------


def test_git_settings_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key, _ = keypair(tmp_path / "k")
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "known_hosts").write_text("h ssh-ed25519 AAAA\n")
    monkeypatch.setenv("DM_GIT_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("DM_GIT_SSH_KEY_FILE", str(tmp_path / "k"))
    monkeypatch.setenv("DM_GIT_KNOWN_HOSTS_FILE", str(tmp_path / "known_hosts"))
    monkeypatch.setenv("DM_GIT_CA_BUNDLE_FILE", str(tmp_path / "absent.pem"))  # optional key not in the Secret
    creds = GitSettings().git_credentials()
    assert creds.token == TOKEN and creds.ssh_key is not None and creds.ca_bundle is None
    settings = Settings(repo_url="https://ghe.example.com/o/r.git", cluster="dev", state_dir=tmp_path)
    assert TOKEN in settings.secret_values() and creds.ssh_key in settings.secret_values()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DM_GIT_SSH_KEY": "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n"}, "needs DM_GIT_KNOWN_HOSTS"),
        ({"DM_GIT_SSH_KEY": "hunter2-not-a-key"}, "not a PEM/OpenSSH private key"),
        ({"DM_GIT_CA_BUNDLE": "hunter2-not-a-cert"}, "no PEM certificate"),
        ({"DM_GIT_KNOWN_HOSTS": "hunter2-one-field"}, "line 1"),
        ({"DM_GIT_TOKEN": "changeme"}, "well-known default"),
    ],
)
def test_bad_git_settings_name_the_setting_never_the_value(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import ValidationError

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        GitSettings()
    errors = info.value.errors(include_input=False, include_url=False)
    assert message in str([e["msg"] for e in errors])
    assert "hunter2" not in str([e["msg"] for e in errors])


# --- over SSH: sshd on loopback -----------------------------------------------------------------------------


def test_ssh_deploy_key_clones_and_fetches(sshd: SshServer, served: Path, tmp_path: Path) -> None:
    url = f"{sshd.url_prefix}{served}/deploy.git"
    creds = GitCredentials(ssh_key=sshd.client_key, known_hosts=sshd.known_hosts)
    src = GitSource(url, mirror_dir=tmp_path / "mirrors", credentials=creds)
    try:
        assert src.resolve("main") == git(served / "deploy.git", "rev-parse", "main")
        new = _new_commit(served)
        src.fetch()
        assert src.resolve("main") == new
        _nothing_holds("PRIVATE KEY", tmp_path / "mirrors")
    finally:
        src.close()


def test_ssh_unknown_host_key_is_refused(sshd: SshServer, served: Path, tmp_path: Path) -> None:
    _, other = keypair(tmp_path / "other_host")
    wrong = sshd.known_hosts.split()[0] + " " + " ".join(other.split()[:2]) + "\n"
    creds = GitCredentials(ssh_key=sshd.client_key, known_hosts=wrong)
    with pytest.raises(SourceError, match="clone failed") as info:
        GitSource(f"{sshd.url_prefix}{served}/deploy.git", mirror_dir=tmp_path / "m", credentials=creds)
    assert "Host key verification failed" in str(info.value) or "REMOTE HOST IDENTIFICATION" in str(info.value)
    assert not list((tmp_path / "m").glob("*/HEAD"))  # nothing half-cloned left in use


def test_ssh_wrong_key_is_refused_without_a_prompt(sshd: SshServer, served: Path, tmp_path: Path) -> None:
    stranger, _ = keypair(tmp_path / "stranger")
    creds = GitCredentials(ssh_key=stranger, known_hosts=sshd.known_hosts)
    with pytest.raises(SourceError, match="Could not read from remote repository|Permission denied"):
        GitSource(f"{sshd.url_prefix}{served}/deploy.git", mirror_dir=tmp_path / "m", credentials=creds)


# --- over HTTPS: git http-backend behind TLS with a self-signed CA ------------------------------------------


def test_https_token_and_ca_bundle_clone_and_fetch(https: HttpsServer, served: Path, tmp_path: Path) -> None:
    creds = GitCredentials(token=TOKEN, ca_bundle=https.ca_bundle)
    src = GitSource(f"{https.url_prefix}/deploy.git", mirror_dir=tmp_path / "mirrors", credentials=creds)
    try:
        assert src.url == f"{https.url_prefix}/deploy.git"
        new = _new_commit(served)
        src.fetch()
        assert src.resolve("main") == new
        _nothing_holds(TOKEN, tmp_path / "mirrors")
        assert any(auth.startswith("Basic ") for _, auth in https.seen)
    finally:
        src.close()


def test_https_without_the_ca_is_refused(https: HttpsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GIT_SSL_CAINFO", raising=False)
    with pytest.raises(SourceError, match="clone failed.*(certificate|SSL)"):
        GitSource(f"{https.url_prefix}/deploy.git", mirror_dir=tmp_path / "m", credentials=GitCredentials(token=TOKEN))


def test_https_wrong_token_fails_fast_and_redacted(https: HttpsServer, tmp_path: Path) -> None:
    bad = "ghp_wrongTokenValue0123456789abcdef"
    creds = GitCredentials(token=bad, ca_bundle=https.ca_bundle)
    with pytest.raises(SourceError, match="clone failed") as info:
        GitSource(f"{https.url_prefix}/deploy.git", mirror_dir=tmp_path / "m", credentials=creds)
    assert bad not in str(info.value) and "Authentication failed" in str(info.value)


def test_legacy_token_in_the_url_is_moved_out_of_it(https: HttpsServer, tmp_path: Path) -> None:
    """`DM_REPO_URL=https://user:token@host/...` still works, but the token never reaches the mirror."""
    host = https.url_prefix.removeprefix("https://")
    creds = GitCredentials(ca_bundle=https.ca_bundle)
    src = GitSource(f"https://{USER}:{TOKEN}@{host}/deploy.git", mirror_dir=tmp_path / "mirrors", credentials=creds)
    try:
        assert TOKEN not in src.url
        src.fetch()
        _nothing_holds(TOKEN, tmp_path / "mirrors")
        # A mirror an older version cloned with the token in its config is cleaned when opened.
        git(src.path, "config", "remote.origin.url", f"https://{USER}:{TOKEN}@{host}/deploy.git")
        src.close()
        src = GitSource(f"https://{USER}:{TOKEN}@{host}/deploy.git", mirror_dir=tmp_path / "mirrors", credentials=creds)
        _nothing_holds(TOKEN, tmp_path / "mirrors")
        src.fetch()
    finally:
        src.close()


def test_key_files_are_removed_when_the_auth_is_dropped_without_close(tmp_path: Path) -> None:
    import gc

    key, _ = keypair(tmp_path / "k")
    auth = GitAuth.for_url("ssh://git@h/r.git", GitCredentials(ssh_key=key, known_hosts="h ssh-ed25519 AAA"))
    folder = auth._dir
    assert folder is not None and folder.exists()
    del auth
    gc.collect()
    assert not folder.exists()


# --- the CLI reads the same DM_GIT_* settings ----------------------------------------------------------------


def _cli(tmp_path: Path, *args: str) -> tuple[int, str]:
    from typer.testing import CliRunner

    from deploy_manager.cli import app

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
    )
    result = CliRunner().invoke(app, [*args, "--kubeconfig", str(kubeconfig), "--state-dir", str(tmp_path / "s")])
    return result.exit_code, result.stderr


def test_cli_clones_over_https_with_token_and_ca_files(
    https: HttpsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "ca.pem").write_text(https.ca_bundle)
    monkeypatch.setenv("DM_GIT_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("DM_GIT_CA_BUNDLE_FILE", str(tmp_path / "ca.pem"))
    code, err = _cli(tmp_path, "plan", "--repo", f"{https.url_prefix}/deploy.git", "--cluster", "dev")
    # git worked; the plan then stops at the unreachable Kubernetes API, in one line.
    assert code == 2 and "Kubernetes API" in err and "clone failed" not in err, err
    assert TOKEN not in err


def test_cli_refuses_bad_git_settings_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nhunter2\n-----END OPENSSH PRIVATE KEY-----"
    monkeypatch.setenv("DM_GIT_SSH_KEY", key)
    code, err = _cli(tmp_path, "plan", "--repo", "https://ghe.example.com/o/r.git", "--cluster", "dev")
    assert code == 2 and err.count("\n") == 1 and "needs DM_GIT_KNOWN_HOSTS" in err and "hunter2" not in err


def test_legacy_token_as_the_url_user_is_sent_with_an_empty_password(served: Path, tmp_path: Path) -> None:
    """`https://<token>@host/…` (GitHub's short form): the token goes as the user name, never into the mirror."""
    with https_server(tmp_path, username=TOKEN, token="") as server:
        host = server.url_prefix.removeprefix("https://")
        (tmp_path / "deploy.git").symlink_to(served / "deploy.git")
        src = GitSource(f"https://{TOKEN}@{host}/deploy.git", mirror_dir=tmp_path / "mirrors",
                        credentials=GitCredentials(ca_bundle=server.ca_bundle))  # fmt: skip
        try:
            assert src.resolve("main") and TOKEN not in src.url
            _nothing_holds(TOKEN, tmp_path / "mirrors")
        finally:
            src.close()
