"""`HelmRunner`: run the helm binary safely.

- an argument list, never a shell string; `--kubeconfig`/`--kube-context` on every cluster call;
- values through a temporary file (mode 0600, deleted afterwards), never on the command line;
- `--wait` with helm's `--timeout`, and a subprocess timeout *longer* than it, so helm is not killed
  mid-release and a release is not left pending by us;
- the last 50 lines of output kept, with secret values redacted;
- failures as named error types: `HelmTimeout` (our subprocess limit, or helm's own deadline),
  `ReleaseLocked` (the release is pending-*), `ChartRenderError` (client-side render), `HelmError`.
  After a failed write the release's real state is read back with `helm status -o json`, so the kind
  and the recorded revision come from the release record rather than from stderr wording.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy_manager.models.errors import DeployManagerError, TemporaryError
from deploy_manager.redaction import REDACTED, Redactor, cut
from deploy_manager.retry import RetryPolicy, call_with_retries, is_transient, retry_after

TAIL_LINES = 50
# After SIGTERM, helm needs a moment to record the release as failed; then it is killed.
END_GRACE_SECONDS = 15.0
POLL_SECONDS = 0.2
# The error kept in a step's message: helm's whole last `Error:` block (template, line, key, why), masked, then cut.
ERROR_CHARS = 1500
__all__ = ["REDACTED", "redact", "tail"]


class HelmError(DeployManagerError):
    def __init__(
        self,
        message: str,
        *,
        exit_code: int | None = None,
        output_tail: str = "",
        release: str | None = None,
        revision: int | None = None,
        status: str | None = None,
    ) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.output_tail = output_tail
        self.release = release
        self.revision = revision
        self.status = status
        self.retried: tuple[str, ...] = ()  # messages of earlier attempts retried on a temporary error


class HelmTransient(HelmError, TemporaryError):
    """Helm failed on an answer a retry may fix (the API's 5xx/429, a timeout or a dropped connection)."""


class HelmTimeout(HelmError):
    temporary = True


class ReleaseLocked(HelmError):
    temporary = True


class HelmEnded(HelmError):
    """We ended the helm command (shutdown past its grace, or a superseding commit): SIGTERM, so helm 4 cancels
    its wait and marks the release `failed` rather than leaving it `pending-*`."""

    temporary = True


class ChartRenderError(HelmError):
    pass


class HelmNotFound(HelmError):
    pass


@dataclass(frozen=True)
class HelmResult:
    args: tuple[str, ...]
    exit_code: int
    duration: float
    stdout: str
    output_tail: str
    release: dict[str, Any] = field(default_factory=dict)
    retried: tuple[str, ...] = ()  # messages of the attempts retried on a temporary error before this one

    @property
    def revision(self) -> int | None:
        version = self.release.get("version")
        return int(version) if isinstance(version, int | str) and str(version).isdigit() else None

    @property
    def status(self) -> str | None:
        return (self.release.get("info") or {}).get("status")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Tool output: the known secret values and `password: x`-style assignments masked (deploy_manager.redaction)."""
    return Redactor(secrets, assignments=True).text(text)


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def masked_tail(text: str, masker: Redactor, lines: int = TAIL_LINES) -> str:
    """The last `lines` lines, masked before they are cut: a multi-line secret that starts above the cut is
    still seen whole (the margin is the longest secret's line count)."""
    margin = max((s.count("\n") + 1 for s in masker.secrets), default=0)
    return tail(masker.text(tail(text, lines + margin)), lines)


class HelmRunner:
    def __init__(
        self,
        helm_bin: str = "helm",
        *,
        kubeconfig: Path | None = None,
        kube_context: str | None = None,
        timeout_margin: int = 30,
        wait: str = "watcher",
        env: dict[str, str] | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.helm_bin = helm_bin
        self.retry = retry if retry is not None else RetryPolicy()
        self.kubeconfig = kubeconfig
        self.kube_context = kube_context
        self.timeout_margin = timeout_margin
        self.wait = wait
        self.env = {**os.environ, **(env or {})}
        # `without_wait` (the manager's own release, issue 15): never wait, and add these release labels.
        self.no_wait = False
        self.extra_labels: dict[str, str] = {}

    def without_wait(self, labels: dict[str, str] | None = None) -> HelmRunner:
        """A copy (same binary, cluster, metrics) whose writes never `--wait` and add `labels`: for the manager's
        own release, whose new pod cannot start before the waiting one has exited (Recreate)."""
        runner = copy.copy(self)
        runner.no_wait = True
        runner.extra_labels = {**self.extra_labels, **(labels or {})}
        return runner

    # -- plumbing -------------------------------------------------------------------------------------
    def _cluster_flags(self) -> list[str]:
        flags: list[str] = []
        if self.kubeconfig is not None:
            flags += ["--kubeconfig", str(self.kubeconfig)]
        if self.kube_context:
            flags += ["--kube-context", self.kube_context]
        return flags

    @contextlib.contextmanager
    def _values_file(self, values: dict[str, Any]) -> Iterator[str]:
        fd, path = tempfile.mkstemp(prefix="dm-values-", suffix=".json")  # mkstemp: mode 0600
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(values, fh)  # JSON is YAML: helm reads it as a values file
            yield path
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def run(
        self,
        args: list[str],
        *,
        timeout: float,
        secrets: Iterable[str] = (),
        release: str | None = None,
        end: Callable[[], bool] | None = None,
    ) -> HelmResult:
        """Run `helm <args>`; raise HelmError/HelmTimeout on failure, return the result on exit 0.

        `end`: polled while helm runs; once it answers True helm is sent SIGTERM (then SIGKILL after
        END_GRACE_SECONDS) and `HelmEnded` is raised."""
        argv = [self.helm_bin, *args]
        secrets = list(secrets)
        start = time.monotonic()
        try:
            # In our process group: whatever kills the group (a pod's teardown) kills helm too, as it should.
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env)
        except FileNotFoundError as exc:
            raise HelmNotFound(f"helm binary not found: {self.helm_bin}", release=release) from exc
        deadline = start + timeout
        ended = False
        stdout = stderr = ""
        with proc:
            while True:
                left = deadline - time.monotonic()
                try:
                    stdout, stderr = proc.communicate(timeout=max(0.01, min(left, POLL_SECONDS)))
                    break
                except subprocess.TimeoutExpired:
                    pass
                if time.monotonic() >= deadline:
                    proc.kill()
                    out, err = proc.communicate()
                    raise HelmTimeout(
                        f"helm {args[0]} {release or ''} did not finish within {timeout:.0f}s".replace("  ", " "),
                        output_tail=tail(redact(_text(out) + _text(err), secrets)),
                        release=release,
                    )
                if end is not None and not ended and end():
                    ended = True
                    proc.send_signal(signal.SIGTERM)
                    try:
                        stdout, stderr = proc.communicate(timeout=END_GRACE_SECONDS)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        stdout, stderr = proc.communicate()
                    break
        if ended:
            raise HelmEnded(
                f"helm {args[0]} {release + ' ' if release else ''}ended by deploy-manager (SIGTERM)",
                exit_code=proc.returncode,
                output_tail=masked_tail((stdout or "") + (stderr or ""), Redactor(secrets, assignments=True)),
                release=release,
            )
        duration = time.monotonic() - start
        stdout, stderr = stdout or "", stderr or ""
        shown = stderr if _looks_json(stdout) else stdout + stderr
        masker = Redactor(secrets, assignments=True)
        out_tail = masked_tail(shown, masker)
        if proc.returncode != 0:
            last = cut(_error_detail(masker.text(stderr or stdout)), ERROR_CHARS)
            kind = HelmTransient if is_transient(last) else HelmError
            error = kind(
                f"helm {args[0]} {release + ' ' if release else ''}failed (exit {proc.returncode}): {last}",
                exit_code=proc.returncode,
                output_tail=out_tail,
                release=release,
            )
            if isinstance(error, HelmTransient):
                error.delay = retry_after(last)
            raise error
        release_json: dict[str, Any] = {}
        if _looks_json(stdout):
            with contextlib.suppress(ValueError):
                parsed = json.loads(stdout)
                release_json = parsed if isinstance(parsed, dict) else {}
        return HelmResult(tuple(argv), proc.returncode, duration, stdout, out_tail, release_json)

    def _retried(self, call: Callable[[], HelmResult]) -> HelmResult:
        """`call` retried on `HelmTransient` (never on a helm timeout: that is the workload, not the API)."""
        result, retried = call_with_retries(call, self.retry, retry_on=lambda exc: isinstance(exc, HelmTransient))
        return dataclasses.replace(result, retried=retried) if retried else result

    # -- commands -------------------------------------------------------------------------------------
    def upgrade_install(
        self,
        *,
        release: str,
        namespace: str,
        chart: str,
        values: dict[str, Any],
        labels: dict[str, str],
        timeout: int,
        version: str | None = None,
        repo: str | None = None,
        secrets: Iterable[str] = (),
        wait: bool = True,
        end: Callable[[], bool] | None = None,
    ) -> HelmResult:
        """`helm upgrade --install` one release; on failure, classify by the release's recorded state."""
        secrets = list(secrets)
        with self._values_file(values) as values_path:
            args = ["upgrade", "--install", release, chart, "--namespace", namespace, "--create-namespace"]
            args += ["--values", values_path, "--timeout", f"{timeout}s", "-o", "json"]
            if wait and not self.no_wait:
                args += [f"--wait={self.wait}"]
            labels = {**labels, **self.extra_labels}
            if labels:
                args += ["--labels", ",".join(f"{k}={v}" for k, v in sorted(labels.items()))]
            if version:
                args += ["--version", version]
            if repo:
                args += ["--repo", repo]
            args += self._cluster_flags()

            def attempt() -> HelmResult:
                try:
                    return self.run(
                        args, timeout=timeout + self.timeout_margin, secrets=secrets, release=release, end=end
                    )
                except HelmNotFound:
                    raise
                except HelmError as exc:
                    raise self._classified(exc, release, namespace, type(exc)) from exc

            return self._retried(attempt)

    def rollback(self, *, release: str, namespace: str, revision: int, timeout: int, wait: bool = True) -> HelmResult:
        """`helm rollback RELEASE REVISION` (also frees a release left pending-* by a dead operation); the
        result's `release` is read back with `helm status`, so its revision is the new one."""
        args = ["rollback", release, str(revision), "--namespace", namespace, "--timeout", f"{timeout}s"]
        if wait and not self.no_wait:
            args += [f"--wait={self.wait}"]
        args += self._cluster_flags()
        result = self._retried(lambda: self.run(args, timeout=timeout + self.timeout_margin, release=release))
        return dataclasses.replace(result, release=self.status(release, namespace) or {})

    def uninstall(self, *, release: str, namespace: str, timeout: int) -> HelmResult:
        """`helm uninstall` (waits for the release's objects to be deleted)."""
        args = ["uninstall", release, "--namespace", namespace, "--timeout", f"{timeout}s"]
        args += [] if self.no_wait else [f"--wait={self.wait}"]
        args += ["--ignore-not-found"]  # a failed first install may have left nothing to uninstall
        args += self._cluster_flags()
        return self._retried(lambda: self.run(args, timeout=timeout + self.timeout_margin, release=release))

    def _classified(self, exc: HelmError, release: str, namespace: str, default: type[HelmError]) -> HelmError:
        """Re-raise a failed write as the kind the release record shows, with its revision."""
        state = self.status(release, namespace)
        info = (state or {}).get("info") or {}
        status = str(info.get("status") or "")
        description = str(info.get("description") or "")
        kind: type[HelmError] = default
        if default is HelmEnded:
            kind = HelmEnded  # ours: the record shows what helm left (`failed`, or `pending-*` if it was killed)
        elif status.startswith("pending-"):
            kind = ReleaseLocked
        elif default in (HelmError, HelmTransient) and _is_deadline(description + "\n" + exc.output_tail):
            kind = HelmTimeout
        revision = (state or {}).get("version")
        out = kind(
            str(exc),
            exit_code=exc.exit_code,
            output_tail=exc.output_tail,
            release=release,
            revision=int(revision) if isinstance(revision, int) else None,
            status=status or None,
        )
        if isinstance(out, TemporaryError) and isinstance(exc, TemporaryError):
            out.delay = exc.delay
        return out

    def status(self, release: str, namespace: str) -> dict[str, Any] | None:
        """`helm status -o json`, or None if the release does not exist (or cannot be read)."""
        try:
            res = self.run(
                ["status", release, "--namespace", namespace, "-o", "json", *self._cluster_flags()],
                timeout=60,
                release=release,
            )
        except HelmError:
            return None
        return res.release or None

    def template(
        self,
        *,
        release: str,
        namespace: str,
        chart: str,
        values: dict[str, Any],
        secrets: Iterable[str] = (),
        timeout: int = 120,
    ) -> str:
        """Render a local chart client-side (no cluster access): the cheap pre-flight check."""
        with self._values_file(values) as values_path:
            args = ["template", release, chart, "--namespace", namespace, "--values", values_path]
            try:
                return self.run(args, timeout=timeout, secrets=secrets, release=release).stdout
            except (HelmTimeout, HelmNotFound):
                raise
            except HelmError as exc:
                raise ChartRenderError(
                    str(exc).replace("helm template", "chart does not render:", 1),
                    exit_code=exc.exit_code,
                    output_tail=exc.output_tail,
                    release=release,
                ) from exc

    def list_releases(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """`helm ls -o json` (all states), for status cross-checks and tests."""
        args = ["list", "--deployed", "--failed", "--pending", "-o", "json", *self._cluster_flags()]
        args += ["--namespace", namespace] if namespace else ["--all-namespaces"]
        res = self.run(args, timeout=60)
        data = json.loads(res.stdout or "[]")
        return data if isinstance(data, list) else []


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def _looks_json(text: str) -> bool:
    return text.lstrip().startswith(("{", "["))


def _error_detail(text: str) -> str:
    """Helm's last `Error:` block on one line. Helm 4 spreads one error over several lines (the template and
    line of each nested `include`, a schema error's `- at '/replicas': got string, want integer`): keep them
    all, so the message says where and why; drop the `Use --debug` hint."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    starts = [i for i, ln in enumerate(lines) if ln.startswith("Error:")]
    if not starts:
        errors = [ln for ln in lines if ln.lower().startswith("error")]
        return (errors or lines or ["no output"])[-1]
    block = [ln for ln in lines[starts[-1] :] if not ln.startswith("Use --debug flag")]
    return " ".join(block)


def _is_deadline(text: str) -> bool:
    low = text.lower()
    return "context deadline exceeded" in low or "timed out waiting" in low
