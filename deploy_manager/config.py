"""The one `Settings` of the deploy-manager service (pydantic-settings, env prefix `DM_`).

Contract:
- Every field is read from `DM_<FIELD>` (e.g. `DM_REPO_URL`, `DM_POLL_INTERVAL_SECONDS`). The names listed in
  issue 5 are fixed interfaces; new settings are only ever added.
- Secrets (`github_webhook_secret`, `jenkins_token`, `read_tokens`, `write_tokens`) may also come from files, the
  way Kubernetes mounts a Secret: `DM_<NAME>_FILE=/path/to/file` (a trailing newline is stripped), or a
  directory given by `DM_SECRETS_DIR` holding one file per field name (pydantic-settings `secrets_dir`).
  Files in `DM_SECRETS_DIR` are named like the variable (`DM_JENKINS_TOKEN`). A `DM_<NAME>_FILE` that does not
  exist (an optional key absent from the Secret) leaves the setting unset.
  Precedence: constructor arguments > `DM_<NAME>` > `DM_<NAME>_FILE` > `DM_SECRETS_DIR`.
- Git credentials for the values repo (`DM_GIT_TOKEN`, `DM_GIT_USERNAME`, `DM_GIT_SSH_KEY`, `DM_GIT_KNOWN_HOSTS`,
  `DM_GIT_CA_BUNDLE`) live in `GitSettings`, which the CLI reads on its own; each also has its `_FILE` form.
  They never go into the URL (see `deploy_manager.source.credentials`).
- An empty secret means "not configured": the endpoint it guards is disabled, never open.
- Obviously default secrets (`changeme`, `changethis`, ...) are refused at start-up with an error naming the
  setting, never its value. (No length rule: a deployment's secret policy belongs to its secret store.)
- Settings are built by the caller (`deploy-manager serve`, tests) and passed to `create_app(settings)`;
  nothing here runs at import time.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

from deploy_manager.redaction import redacted_url, url_secrets

if TYPE_CHECKING:
    from deploy_manager.planner.selfmanage import SelfRelease
    from deploy_manager.source.credentials import GitCredentials

ENV_PREFIX = "DM_"
# What GitHub/GHE expect with an App installation token; a personal access token accepts any user name.
DEFAULT_GIT_USERNAME = "x-access-token"
MIB = 1024 * 1024

# Values that ship in examples and templates; running with them means nobody set a real secret.
DEFAULT_SECRETS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "changethis",
        "change-this",
        "default",
        "password",
        "example",
        "placeholder",
        "replaceme",
        "replace-me",
        "xxxxxxxx",
    }
)
DNS_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"

# Fields that are secrets: readable from files and checked against DEFAULT_SECRETS.
SECRET_FIELDS = (
    "github_webhook_secret",
    "jenkins_token",
    "read_tokens",
    "write_tokens",
    "git_token",
    "git_ssh_key",
    "github_token",  # commit statuses (issue 14)
    "notify_url",  # a Slack-style webhook URL carries its secret in the path
)
# Every field with a `DM_<NAME>_FILE` form: the secrets plus files that are not secret but come from a mount.
FILE_FIELDS = (*SECRET_FIELDS, "git_known_hosts", "git_ca_bundle")


class FileEnvSettingsSource(PydanticBaseSettingsSource):
    """`DM_<NAME>_FILE=/path`: read a secret field from a file (a mounted Kubernetes Secret key)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        env_name = f"{ENV_PREFIX}{field_name.upper()}_FILE"
        path = os.environ.get(env_name)
        if not path:
            return None, field_name, False
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            # An optional key missing from the mounted Secret: the setting is unset (its endpoint disabled).
            return None, field_name, False
        except OSError as exc:
            # Name the variable and path, never the content.
            raise ValueError(f"{env_name}: cannot read secret file {path}: {exc.strerror}") from exc
        return text.rstrip("\r\n"), field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in FILE_FIELDS:
            field = self.settings_cls.model_fields.get(name)
            if field is None:  # GitSettings alone has only the git_* fields
                continue
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                values[key] = value
        return values


def _split_tokens(value: Any) -> Any:
    """`a,b , c` -> ("a", "b", "c"); blanks dropped so a trailing comma is harmless."""
    if value is None:
        return ()
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _check_secret(name: str, value: str) -> None:
    if value.strip().lower() in DEFAULT_SECRETS:
        raise ValueError(f"{ENV_PREFIX}{name.upper()} is a well-known default value; set a real secret")


SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def default_lease_namespace() -> str:
    """The pod's own namespace when running in a cluster, else `default`."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip() or "default"
    except OSError:
        return "default"


def lease_name_for(cluster: str) -> str:
    """The cluster's Lease name (the service's and `deploy-manager apply`'s): a DNS subdomain."""
    # Cluster names are directory names; a Lease name must be a DNS subdomain.
    slug = re.sub(r"[^a-z0-9.-]+", "-", cluster.lower()).strip("-.") or "default"
    return f"deploy-manager-{slug}"[:253].rstrip("-.")


def default_identity() -> str:
    """Lease holder identity: the pod name (else the host name), the pid, the boot id and the process start
    time, so a restarted service can prove the holder dead (`deploy_manager.liveness`)."""
    from deploy_manager.liveness import local_identity

    return local_identity(os.environ.get("POD_NAME") or socket.gethostname())


Tokens = Annotated[tuple[SecretStr, ...], NoDecode]
Names = Annotated[tuple[str, ...], NoDecode]


def _sources(
    settings_cls: type[BaseSettings],
    init_settings: PydanticBaseSettingsSource,
    env_settings: PydanticBaseSettingsSource,
) -> tuple[PydanticBaseSettingsSource, ...]:
    sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, FileEnvSettingsSource(settings_cls)]
    # Only when asked for: pydantic-settings warns about a secrets_dir that does not exist.
    secrets_dir = os.environ.get(f"{ENV_PREFIX}SECRETS_DIR")
    if secrets_dir:
        sources.append(SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir))
    return tuple(sources)


class GitSettings(BaseSettings):
    """How to authenticate to the values repo; read by the service (as part of `Settings`) and by the CLI."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    git_username: str = Field(
        DEFAULT_GIT_USERNAME, min_length=1, description="User name sent with DM_GIT_TOKEN over HTTPS."
    )
    git_token: SecretStr | None = Field(None, description="HTTPS token (GitHub/GHE PAT or App token).")
    git_ssh_key: SecretStr | None = Field(None, description="SSH deploy key (OpenSSH private key, unencrypted).")
    git_known_hosts: str | None = Field(None, description="known_hosts lines of the git server (needed with SSH).")
    git_ca_bundle: str | None = Field(None, description="PEM CA bundle that signs the git server's certificate.")

    @field_validator("git_token", "git_ssh_key", "git_known_hosts", "git_ca_bundle", mode="before")
    @classmethod
    def _empty_git_setting_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("git_token", mode="after")
    @classmethod
    def _refuse_default_token(cls, value: SecretStr | None, info: Any) -> SecretStr | None:
        if value is not None:
            _check_secret(info.field_name, value.get_secret_value())
        return value

    @field_validator("git_ssh_key", mode="after")
    @classmethod
    def _looks_like_a_key(cls, value: SecretStr | None) -> SecretStr | None:
        # Name the setting, never the content; an encrypted key would need a passphrase nobody can type.
        if value is not None:
            text = value.get_secret_value()
            if "PRIVATE KEY-----" not in text:
                raise ValueError("DM_GIT_SSH_KEY is not a PEM/OpenSSH private key")
            if "ENCRYPTED" in text:
                raise ValueError("DM_GIT_SSH_KEY is encrypted; a deploy key must have no passphrase")
        return value

    @field_validator("git_ca_bundle", mode="after")
    @classmethod
    def _looks_like_pem(cls, value: str | None) -> str | None:
        if value is not None and "-----BEGIN CERTIFICATE-----" not in value:
            raise ValueError("DM_GIT_CA_BUNDLE holds no PEM certificate")
        return value

    @field_validator("git_known_hosts", mode="after")
    @classmethod
    def _known_hosts_lines(cls, value: str | None) -> str | None:
        if value is not None:
            for number, line in enumerate(value.splitlines(), 1):
                if line.strip() and not line.lstrip().startswith("#") and len(line.split()) < 3:
                    raise ValueError(f"DM_GIT_KNOWN_HOSTS line {number}: expected `host keytype key`")
        return value

    @model_validator(mode="after")
    def _ssh_key_needs_known_hosts(self) -> GitSettings:
        # Without the server's host key ssh refuses (StrictHostKeyChecking): say so at start-up, not per fetch.
        if self.git_ssh_key is not None and self.git_known_hosts is None:
            raise ValueError("DM_GIT_SSH_KEY needs DM_GIT_KNOWN_HOSTS (the git server's host key)")
        return self

    def git_credentials(self) -> GitCredentials:
        from deploy_manager.source.credentials import GitCredentials  # lazily: the package imports GitPython

        return GitCredentials(
            username=self.git_username,
            token=self.git_token.get_secret_value() if self.git_token is not None else None,
            ssh_key=self.git_ssh_key.get_secret_value() if self.git_ssh_key is not None else None,
            known_hosts=self.git_known_hosts,
            ca_bundle=self.git_ca_bundle,
        )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return _sources(settings_cls, init_settings, env_settings)


class Settings(GitSettings):
    """Service settings; see the module docstring for sources and secrets."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    # --- the values repo and the cluster (fixed names) ---
    repo_url: str = Field(description="Values repo: a git URL (file:// included) or a local path.")
    branch: str = Field("main", description="The branch that is deployed.")
    cluster: str = Field(description="Cluster name: values/<cluster>/cluster.yaml.")
    state_dir: Path = Field(Path("/var/lib/deploy-manager"), description="Run database and git mirror live here.")
    kubeconfig: Path | None = Field(None, description="Kubeconfig path; absent: in-cluster config.")
    kube_context: str | None = Field(None, description="Kubeconfig context to use.")
    helm_bin: str = Field("helm", description="The helm binary.")
    max_parallel: int = Field(4, ge=1, le=64, description="Independent components applied in parallel.")
    namespaces: Names = Field(
        (),
        description="Namespaced RBAC: the only namespaces the manager has rights in (comma-separated); release "
        "Secrets are then listed per namespace, never cluster-wide. Empty: cluster-wide rights.",
    )

    # --- bootstrap Job pods (JSON objects; default: the restricted Pod Security profile, see bootstrap/manifests) ---
    job_pod_security_context: dict[str, Any] | None = Field(None, description="Pod securityContext of bootstrap Jobs.")
    job_security_context: dict[str, Any] | None = Field(None, description="Container securityContext of Jobs.")
    job_resources: dict[str, Any] | None = Field(None, description="Container resources of bootstrap Jobs.")

    # --- HTTP ---
    host: str = Field("0.0.0.0", description="Address to listen on (a pod listens on all interfaces).")
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(MIB, ge=1024, description="Request bodies above this answer 413.")
    api_docs: bool = Field(False, description="Serve /docs and /redoc (assets from the package, never a CDN).")

    # --- triggers ---
    poll_interval_seconds: float = Field(60.0, ge=0, description="Fetch interval; 0 disables polling.")
    poll_jitter_seconds: float | None = Field(
        None, ge=0, description="Random delay added to each poll; default 10% of the interval, at most 30 s."
    )
    observe_interval_seconds: float = Field(300.0, ge=0, description="Refresh /releases from the cluster; 0: never.")
    # --- workflow checks (issue 14) ---
    smoke_after_run: Literal["changed", "all", "none"] = Field(
        "changed",
        description="Which workflow checks a run runs: changed (those whose component or gates it wrote), all, none.",
    )
    smoke_tick_seconds: float = Field(
        5.0, ge=0, description="How often the service looks for scheduled checks that are due; 0: never."
    )
    drift_interval_seconds: float = Field(
        300.0, ge=0, description="Check live objects against the release manifests (also after each run); 0: never."
    )
    trigger_quiet_seconds: float = Field(
        2.0, ge=0, description="A run queued during a burst of triggers starts once none came for this long."
    )
    trigger_max_delay_seconds: float = Field(60.0, ge=0, description="...but never later than this after queueing.")
    github_webhook_secret: SecretStr | None = None
    jenkins_token: SecretStr | None = None
    read_tokens: Tokens = ()
    write_tokens: Tokens = ()

    # --- the per-cluster Lease that keeps two replicas from running helm together ---
    lease_namespace: str = Field(
        default_factory=default_lease_namespace,
        pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
        description="Namespace of the Lease; default: the pod's namespace.",
    )
    lease_name: str | None = Field(
        None, pattern=DNS_NAME, max_length=253, description="Lease name; default deploy-manager-<cluster>."
    )
    lease_duration_seconds: float = Field(30.0, gt=0)
    lease_renew_seconds: float = Field(10.0, gt=0)
    identity: str = Field(default_factory=default_identity, description="Lease holder identity.")
    shutdown_grace_seconds: float = Field(
        840.0,
        ge=0,
        description="On SIGTERM, running helm commands and bootstrap Jobs get this long to finish (nothing new"
        " starts); then helm is ended with SIGTERM (the release is left `failed`, recoverable) and the run is"
        " recorded `interrupted`. Keep the pod's terminationGracePeriodSeconds at least 60 s above it.",
    )
    supersede: bool = Field(
        True,
        description="A newer commit that changes a component waiting in helm's --wait ends that wait (helm gets"
        " SIGTERM) and the running run is recorded `superseded`; bootstrap Jobs are never ended.",
    )

    # --- the manager's own release as a component of its cluster (issue 15; the chart sets all three) ---
    self_release: str | None = Field(
        None,
        pattern=DNS_NAME,
        max_length=53,
        description="The manager's own Helm release. A run that writes it writes it last, without waiting on itself,"
        " and ends `handed_over`; the new pod verifies it at start-up and finishes the run.",
    )
    self_namespace: str | None = Field(
        None, pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", description="Its namespace; default: the pod's."
    )
    self_revision: int | None = Field(
        None, ge=1, description="The release revision this pod was started from (the new pod checks it)."
    )
    self_handover_wait_seconds: float = Field(
        600.0,
        gt=0,
        description="After handing over, this pod takes no run until it is replaced; if it is not replaced within"
        " this long (the new revision's pod never came), it records the handed-over run as failed and goes on.",
    )

    # --- retries of failed runs (issue 10; the same run path retries temporary API errors within a run) ---
    retry_initial_seconds: float = Field(
        30.0, gt=0, description="Re-queue a run that failed on a temporary error after this long, doubling each time."
    )
    retry_max_seconds: float = Field(600.0, gt=0, description="Cap of one backoff wait (plus up to 10% jitter).")
    retry_attempts: int = Field(5, ge=0, description="Re-queues of one commit after temporary failures; 0: none.")
    retry_failed_interval_seconds: float = Field(
        1800.0, ge=0, description="Retry a failed or remediated cluster this often without a new push; 0: never."
    )
    retry_failed_max: int = Field(3, ge=0, description="Slow retries of one commit (a new commit starts again).")

    log_level: str = Field("INFO", pattern=r"^(?i:debug|info|warning|error|critical)$")

    # --- where operators look (issue 14): commit statuses and run notifications, sent off the run's path ---
    github_api_url: str = Field(
        "https://api.github.com",
        pattern=r"^https?://[^\s/@]+(/\S*)?$",
        description="GitHub API base, e.g. https://ghe.example.com/api/v3 for GitHub Enterprise.",
    )
    github_token: SecretStr | None = Field(None, description="Token with the repo:status (statuses: write) right.")
    github_repository: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$",
        description="owner/name of the values repo on GitHub; with DM_GITHUB_TOKEN, commit statuses are posted.",
    )
    public_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s@]+$",
        description="The service's URL as people reach it; links in statuses and notifications point there.",
    )
    notify_url: SecretStr | None = Field(None, description="JSON POST on every run end (Slack-compatible `text`).")

    @field_validator("read_tokens", "write_tokens", mode="before")
    @classmethod
    def _parse_tokens(cls, value: Any) -> Any:
        return _split_tokens(value)

    @field_validator("namespaces", mode="before")
    @classmethod
    def _parse_names(cls, value: Any) -> Any:
        return _split_tokens(value)

    @field_validator("namespaces", mode="after")
    @classmethod
    def _dns_labels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", name):
                raise ValueError(f"DM_NAMESPACES: {name!r} is not a namespace name")
        return value

    @field_validator(
        "github_webhook_secret", "jenkins_token", "github_token", "notify_url", "github_repository", "public_url",
        mode="before",
    )
    @classmethod
    def _empty_secret_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator(
        "github_webhook_secret", "jenkins_token", "read_tokens", "write_tokens", "github_token", mode="after"
    )
    @classmethod
    def _refuse_default_secrets(cls, value: Any, info: Any) -> Any:
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if item is not None:
                _check_secret(info.field_name, item.get_secret_value())
        return value

    @field_validator("cluster", "branch")
    @classmethod
    def _not_blank(cls, value: str, info: Any) -> str:
        if not value.strip() or value.startswith("-"):
            raise ValueError(f"{ENV_PREFIX}{info.field_name.upper()} must be a non-empty name")
        return value

    @field_validator("lease_renew_seconds")
    @classmethod
    def _renew_before_expiry(cls, value: float, info: Any) -> float:
        duration = info.data.get("lease_duration_seconds")
        if duration is not None and value >= duration:
            raise ValueError("DM_LEASE_RENEW_SECONDS must be shorter than DM_LEASE_DURATION_SECONDS")
        return value

    @field_validator("notify_url", mode="after")
    @classmethod
    def _notify_url_is_http(cls, value: SecretStr | None) -> SecretStr | None:
        # Name the setting, never the value: the URL itself is the secret.
        if value is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value.get_secret_value()):
            raise ValueError("DM_NOTIFY_URL must be an http(s) URL")
        return value

    @property
    def own_release(self) -> SelfRelease | None:
        """DM_SELF_RELEASE in DM_SELF_NAMESPACE (default: the pod's namespace), or None."""
        from deploy_manager.planner.selfmanage import SelfRelease

        if not self.self_release:
            return None
        namespace = self.self_namespace or default_lease_namespace()
        return SelfRelease(namespace=namespace, name=self.self_release, revision=self.self_revision)

    @property
    def effective_lease_name(self) -> str:
        return self.lease_name or lease_name_for(self.cluster)

    @property
    def effective_poll_jitter(self) -> float:
        if self.poll_jitter_seconds is not None:
            return self.poll_jitter_seconds
        return min(self.poll_interval_seconds / 10, 30.0)

    @property
    def db_path(self) -> Path:
        return self.state_dir / "deploy-manager.db"

    @property
    def mirror_dir(self) -> Path:
        """Where the bare mirror of DM_REPO_URL is kept (one directory per URL below it), as the CLI does."""
        return self.state_dir / "mirrors"

    def secret_values(self) -> list[str]:
        """Every configured secret (and credentials inside DM_REPO_URL), for redaction of logs and answers."""
        out: list[str] = []
        for name in SECRET_FIELDS:
            value = getattr(self, name)
            for item in value if isinstance(value, tuple) else (value,):
                if item is not None:
                    out.append(item.get_secret_value())
        out += self.git_credentials().secrets()
        return out + url_secrets(self.repo_url)  # https://<token>@host/..., https://user:pass@host/...

    @property
    def redacted_repo_url(self) -> str:
        """DM_REPO_URL without its credentials, for messages."""
        return redacted_url(self.repo_url)
