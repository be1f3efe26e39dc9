"""Settings: the fixed DM_* names, secrets from env, `DM_<NAME>_FILE` and `DM_SECRETS_DIR`, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from deploy_manager.config import Settings

BASE = {"DM_REPO_URL": "file:///srv/values.git", "DM_CLUSTER": "dev"}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in list(__import__("os").environ):
        if key.startswith("DM_"):
            monkeypatch.delenv(key)
    for key, value in BASE.items():
        monkeypatch.setenv(key, value)
    return monkeypatch


def test_the_documented_names_are_read_from_the_environment(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("DM_BRANCH", "production")
    env.setenv("DM_STATE_DIR", str(tmp_path))
    env.setenv("DM_KUBECONFIG", str(tmp_path / "kubeconfig"))
    env.setenv("DM_HOST", "127.0.0.1")
    env.setenv("DM_PORT", "9090")
    env.setenv("DM_POLL_INTERVAL_SECONDS", "0")
    env.setenv("DM_GITHUB_WEBHOOK_SECRET", "a-long-webhook-secret")
    env.setenv("DM_JENKINS_TOKEN", "a-long-jenkins-token")
    env.setenv("DM_READ_TOKENS", "reader-token-1, reader-token-2,")
    env.setenv("DM_WRITE_TOKENS", "writer-token-1")
    s = Settings()
    assert (s.repo_url, s.branch, s.cluster) == ("file:///srv/values.git", "production", "dev")
    assert s.state_dir == tmp_path and s.kubeconfig == tmp_path / "kubeconfig"
    assert s.db_path == tmp_path / "deploy-manager.db" and s.mirror_dir == tmp_path / "mirrors"
    assert (s.host, s.port, s.poll_interval_seconds) == ("127.0.0.1", 9090, 0)
    assert s.github_webhook_secret is not None and s.github_webhook_secret.get_secret_value() == "a-long-webhook-secret"
    assert [t.get_secret_value() for t in s.read_tokens] == ["reader-token-1", "reader-token-2"]
    assert [t.get_secret_value() for t in s.write_tokens] == ["writer-token-1"]


def test_defaults(env: pytest.MonkeyPatch) -> None:
    s = Settings()
    assert s.branch == "main" and s.kubeconfig is None and s.poll_interval_seconds == 60
    assert s.github_webhook_secret is None and s.jenkins_token is None
    assert s.read_tokens == () and s.write_tokens == ()
    assert s.effective_lease_name == "deploy-manager-dev"


def test_secrets_never_show_in_repr(env: pytest.MonkeyPatch) -> None:
    env.setenv("DM_JENKINS_TOKEN", "a-long-jenkins-token")
    env.setenv("DM_READ_TOKENS", "reader-token-1")
    s = Settings()
    assert "a-long-jenkins-token" not in repr(s) and "reader-token-1" not in repr(s)


def test_secret_files_as_mounted_by_a_kubernetes_secret(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "github-webhook-secret").write_text("file-webhook-secret\n")
    (creds / "read-tokens").write_text("file-reader-1,file-reader-2\n")
    env.setenv("DM_GITHUB_WEBHOOK_SECRET_FILE", str(creds / "github-webhook-secret"))
    env.setenv("DM_READ_TOKENS_FILE", str(creds / "read-tokens"))
    # An optional key absent from the Secret: the file does not exist, the endpoint stays disabled.
    env.setenv("DM_JENKINS_TOKEN_FILE", str(creds / "jenkins-token"))
    s = Settings()
    assert s.github_webhook_secret is not None
    assert s.github_webhook_secret.get_secret_value() == "file-webhook-secret"
    assert [t.get_secret_value() for t in s.read_tokens] == ["file-reader-1", "file-reader-2"]
    assert s.jenkins_token is None


def test_an_env_value_wins_over_its_file(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-the-file-000")
    env.setenv("DM_JENKINS_TOKEN_FILE", str(tmp_path / "token"))
    env.setenv("DM_JENKINS_TOKEN", "from-the-env-0000")
    assert Settings().jenkins_token.get_secret_value() == "from-the-env-0000"  # type: ignore[union-attr]


def test_secrets_dir(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "DM_JENKINS_TOKEN").write_text("dir-jenkins-token\n")
    (tmp_path / "DM_WRITE_TOKENS").write_text("dir-writer-1,dir-writer-2")
    env.setenv("DM_SECRETS_DIR", str(tmp_path))
    s = Settings()
    assert s.jenkins_token is not None and s.jenkins_token.get_secret_value() == "dir-jenkins-token"
    assert [t.get_secret_value() for t in s.write_tokens] == ["dir-writer-1", "dir-writer-2"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DM_GITHUB_WEBHOOK_SECRET", "changeme"),
        ("DM_JENKINS_TOKEN", "changethis"),
        ("DM_READ_TOKENS", "good-token-000,password"),
        ("DM_WRITE_TOKENS", "ChangeMe"),
    ],
)
def test_default_secrets_are_refused_without_echoing_them(
    env: pytest.MonkeyPatch, name: str, value: str
) -> None:
    env.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    errors = info.value.errors(include_input=False)
    assert name in errors[0]["msg"]
    assert all(value.split(",")[-1] not in e["msg"] for e in errors)


def test_an_empty_secret_means_not_configured(env: pytest.MonkeyPatch) -> None:
    env.setenv("DM_GITHUB_WEBHOOK_SECRET", "")
    env.setenv("DM_READ_TOKENS", " ")
    s = Settings()
    assert s.github_webhook_secret is None and s.read_tokens == ()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DM_PORT", "http"),
        ("DM_PORT", "70000"),
        ("DM_POLL_INTERVAL_SECONDS", "-1"),
        ("DM_CLUSTER", ""),
        ("DM_LEASE_RENEW_SECONDS", "60"),
    ],
)
def test_bad_values_are_refused(env: pytest.MonkeyPatch, name: str, value: str) -> None:
    env.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_repo_url_and_cluster_are_required(env: pytest.MonkeyPatch) -> None:
    env.delenv("DM_REPO_URL")
    with pytest.raises(ValidationError, match="repo_url"):
        Settings()


def test_the_default_lease_name_is_a_valid_kubernetes_name(env: pytest.MonkeyPatch) -> None:
    env.setenv("DM_CLUSTER", "Prod_Cluster#1")
    assert Settings().effective_lease_name == "deploy-manager-prod-cluster-1"
    env.setenv("DM_LEASE_NAME", "Not_Valid")
    with pytest.raises(ValidationError, match="lease_name"):
        Settings()


def test_credentials_in_the_repo_url_are_secrets(env: pytest.MonkeyPatch) -> None:
    env.setenv("DM_REPO_URL", "https://deploy:ghp_0123456789abcdefghij@ghe.example.com:8443/cloud/values.git")
    s = Settings()
    assert "ghp_0123456789abcdefghij" in s.secret_values()
    assert s.redacted_repo_url == "https://***@ghe.example.com:8443/cloud/values.git"
    env.setenv("DM_REPO_URL", "file:///srv/values.git")
    assert Settings().redacted_repo_url == "file:///srv/values.git"


def test_namespaces_and_job_pod_settings(env: pytest.MonkeyPatch) -> None:
    env.setenv("DM_NAMESPACES", "openstack, openstack-infra,")
    env.setenv("DM_JOB_RESOURCES", '{"requests": {"cpu": "1"}}')
    settings = Settings()
    assert settings.namespaces == ("openstack", "openstack-infra")
    assert settings.job_resources == {"requests": {"cpu": "1"}} and settings.job_security_context is None
    env.setenv("DM_NAMESPACES", "OpenStack")
    with pytest.raises(ValidationError, match="not a namespace name"):
        Settings()


def test_job_pod_policy_replaces_only_the_parts_given(env: pytest.MonkeyPatch) -> None:
    from deploy_manager.api.app import job_pod_policy
    from deploy_manager.bootstrap.manifests import DEFAULT_POD_SECURITY_CONTEXT, DEFAULT_SECURITY_CONTEXT

    env.setenv("DM_JOB_RESOURCES", '{"requests": {"cpu": "1"}}')
    policy = job_pod_policy(Settings())
    assert policy.resources == {"requests": {"cpu": "1"}}
    assert policy.pod_security_context == DEFAULT_POD_SECURITY_CONTEXT
    assert policy.security_context == DEFAULT_SECURITY_CONTEXT


def test_the_managers_own_release(env: pytest.MonkeyPatch) -> None:
    assert Settings().own_release is None  # not set: nothing is handed over
    env.setenv("DM_SELF_RELEASE", "deploy-manager")
    env.setenv("DM_SELF_NAMESPACE", "platform")
    env.setenv("DM_SELF_REVISION", "7")
    own = Settings().own_release
    assert own is not None and (own.namespace, own.name, own.revision) == ("platform", "deploy-manager", 7)
    env.delenv("DM_SELF_NAMESPACE")
    env.setenv("DM_LEASE_NAMESPACE", "ignored")  # the pod's own namespace, not the Lease's setting
    own = Settings().own_release
    assert own is not None and own.namespace == "default"  # outside a pod
    env.setenv("DM_SELF_RELEASE", "Deploy_Manager")
    with pytest.raises(ValidationError, match="self_release"):
        Settings()


def test_commit_status_and_notification_settings(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "github-token").write_text("ghp_from_a_file_0123\n")
    (tmp_path / "notify-url").write_text("https://hooks.example.com/services/T0/B0/secretpart\n")
    env.setenv("DM_GITHUB_API_URL", "https://ghe.example.com/api/v3")
    env.setenv("DM_GITHUB_TOKEN_FILE", str(tmp_path / "github-token"))
    env.setenv("DM_GITHUB_REPOSITORY", "cloud/deploy")
    env.setenv("DM_PUBLIC_URL", "https://deploy.example.com")
    env.setenv("DM_NOTIFY_URL_FILE", str(tmp_path / "notify-url"))
    s = Settings()
    assert s.github_api_url == "https://ghe.example.com/api/v3" and s.github_repository == "cloud/deploy"
    assert s.github_token is not None and s.github_token.get_secret_value() == "ghp_from_a_file_0123"
    assert s.public_url == "https://deploy.example.com"
    assert s.notify_url is not None and s.notify_url.get_secret_value().endswith("/secretpart")
    # Both are masked wherever the service logs or answers.
    assert {"ghp_from_a_file_0123", "https://hooks.example.com/services/T0/B0/secretpart"} <= set(s.secret_values())
    env.setenv("DM_GITHUB_TOKEN", "ghp_from_env_0123")
    assert Settings().github_token.get_secret_value() == "ghp_from_env_0123"  # type: ignore[union-attr]


def test_commit_status_settings_default_off(env: pytest.MonkeyPatch) -> None:
    s = Settings()
    assert s.github_api_url == "https://api.github.com"
    assert (s.github_token, s.github_repository, s.public_url, s.notify_url) == (None, None, None, None)
    env.setenv("DM_GITHUB_REPOSITORY", "")
    env.setenv("DM_NOTIFY_URL", " ")
    assert Settings().notify_url is None and Settings().github_repository is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DM_GITHUB_REPOSITORY", "just-a-name"),
        ("DM_GITHUB_REPOSITORY", "a/b/c"),
        ("DM_GITHUB_API_URL", "ftp://ghe.example.com"),
        ("DM_PUBLIC_URL", "deploy.example.com"),
        ("DM_NOTIFY_URL", "hooks.example.com/secretpart"),
        ("DM_GITHUB_TOKEN", "changeme"),
    ],
)
def test_bad_notify_settings_are_refused_naming_the_setting_not_the_secret(
    env: pytest.MonkeyPatch, name: str, value: str
) -> None:
    env.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    errors = info.value.errors(include_input=False, include_url=False)
    assert [e["loc"][0] for e in errors] == [name.removeprefix("DM_").lower()]
    if name in ("DM_NOTIFY_URL", "DM_GITHUB_TOKEN"):
        assert all(value not in e["msg"] for e in errors)


def test_drift_interval_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DM_DRIFT_INTERVAL_SECONDS", "0")
    assert Settings(repo_url="file:///x", cluster="c").drift_interval_seconds == 0  # type: ignore[call-arg]
    monkeypatch.delenv("DM_DRIFT_INTERVAL_SECONDS")
    assert Settings(repo_url="file:///x", cluster="c").drift_interval_seconds == 300  # type: ignore[call-arg]
