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
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

from deploy_manager.redaction import redacted_url, url_secrets

ENV_PREFIX = "DM_"
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
SECRET_FIELDS = ("github_webhook_secret", "jenkins_token", "read_tokens", "write_tokens")


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
        for name in SECRET_FIELDS:
            field = self.settings_cls.model_fields[name]
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


def default_identity() -> str:
    """Lease holder identity: the pod name (else the host name), the pid, the boot id and the process start
    time, so a restarted service can prove the holder dead (`deploy_manager.liveness`)."""
    from deploy_manager.liveness import local_identity

    return local_identity(os.environ.get("POD_NAME") or socket.gethostname())


Tokens = Annotated[tuple[SecretStr, ...], NoDecode]


class Settings(BaseSettings):
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

    log_level: str = Field("INFO", pattern=r"^(?i:debug|info|warning|error|critical)$")

    @field_validator("read_tokens", "write_tokens", mode="before")
    @classmethod
    def _parse_tokens(cls, value: Any) -> Any:
        return _split_tokens(value)

    @field_validator("github_webhook_secret", "jenkins_token", mode="before")
    @classmethod
    def _empty_secret_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("github_webhook_secret", "jenkins_token", "read_tokens", "write_tokens", mode="after")
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

    @property
    def effective_lease_name(self) -> str:
        if self.lease_name:
            return self.lease_name
        # Cluster names are directory names; a Lease name must be a DNS subdomain.
        slug = re.sub(r"[^a-z0-9.-]+", "-", self.cluster.lower()).strip("-.") or "default"
        return f"deploy-manager-{slug}"[:253].rstrip("-.")

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
        return out + url_secrets(self.repo_url)  # https://<token>@host/..., https://user:pass@host/...

    @property
    def redacted_repo_url(self) -> str:
        """DM_REPO_URL without its credentials, for messages."""
        return redacted_url(self.repo_url)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, FileEnvSettingsSource(settings_cls)]
        # Only when asked for: pydantic-settings warns about a secrets_dir that does not exist.
        secrets_dir = os.environ.get(f"{ENV_PREFIX}SECRETS_DIR")
        if secrets_dir:
            sources.append(SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir))
        return tuple(sources)
