"""JSON log lines for the service (python-json-logger), with cluster, component and run_id on every line.

Contract:
- `configure_logging(settings)` installs one JSON handler on the root logger (idempotent: a second call
  replaces the handler, so tests and re-created apps never print lines twice).
- `log_context(run_id=..., component=...)` sets context for the current thread/task; every line logged inside
  carries it. `cluster` comes from the settings. Explicit `extra={...}` on a call wins over the context;
  `key=%s` pairs in a message (`"cluster=%s component=%s"`, as the core loop logs) fill the same fields.
- Secrets never reach the output: every configured secret value (and the sha256-hashed tokens never exist as
  text here) is replaced by `***` in the rendered message and in string extras, whatever the call site did.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any

from pythonjsonlogger.json import JsonFormatter

from deploy_manager.config import Settings
from deploy_manager.redaction import REDACTED, Redactor

__all__ = ["REDACTED", "RedactingJsonFormatter", "configure_logging", "log_context"]
# `key=%s` pairs in a message that become JSON fields (a fixed set: no surprise keys in the output).
FIELDS_FROM_MESSAGE = frozenset({"cluster", "component", "release", "namespace", "run_id", "revision", "action"})
_HANDLER_NAME = "deploy-manager-json"

_run_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("dm_run_id", default=None)
_component: contextvars.ContextVar[str | None] = contextvars.ContextVar("dm_component", default=None)
_release: contextvars.ContextVar[str | None] = contextvars.ContextVar("dm_release", default=None)


@contextlib.contextmanager
def log_context(
    *, run_id: int | None = None, component: str | None = None, release: str | None = None
) -> Iterator[None]:
    """Attach run_id/component/release to every log line emitted inside the block (this thread/task, and the
    executor's worker threads, which run in a copy of the caller's context)."""
    run_token = _run_id.set(run_id) if run_id is not None else None
    component_token = _component.set(component) if component is not None else None
    release_token = _release.set(release) if release is not None else None
    try:
        yield
    finally:
        if release_token is not None:
            _release.reset(release_token)
        if component_token is not None:
            _component.reset(component_token)
        if run_token is not None:
            _run_id.reset(run_token)


_PLACEHOLDER = re.compile(r"%(?:\((\w+)\))?[-#0 +]*\d*(?:\.\d+)?[sdifr]|%%")
_KEYED = re.compile(r"(\w+)=$")


def keyed_args(msg: str, args: tuple[Any, ...]) -> dict[str, Any]:
    """`"cluster=%s release=%s", ("dev", "nova")` -> {"cluster": "dev", "release": "nova"}.

    Code that logs `key=%s` pairs (the core loop does) gets the same fields as code passing `extra=`.
    """
    out: dict[str, Any] = {}
    index = 0
    for m in _PLACEHOLDER.finditer(msg):
        if m.group(0) == "%%":
            continue
        if index >= len(args):
            return {}  # not a plain positional format: leave it alone
        key = _KEYED.search(msg, 0, m.start())
        if key is not None and key.end() == m.start():
            out[key.group(1)] = args[index]
        index += 1
    return out if index == len(args) else {}


class ContextFilter(logging.Filter):
    """Adds cluster, component and run_id to every record (None when not known)."""

    def __init__(self, cluster: str) -> None:
        super().__init__()
        self.cluster = cluster

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("color_message", None)  # uvicorn's ANSI-coloured duplicate of the message
        if isinstance(record.msg, str) and isinstance(record.args, tuple) and record.args:
            for key, value in keyed_args(record.msg, record.args).items():
                if key in FIELDS_FROM_MESSAGE and getattr(record, key, None) is None:
                    setattr(record, key, value)
        if getattr(record, "cluster", None) is None:
            record.cluster = self.cluster
        if getattr(record, "run_id", None) is None:
            record.run_id = _run_id.get()
        if getattr(record, "component", None) is None:
            record.component = _component.get()
        if getattr(record, "release", None) is None and _release.get() is not None:
            record.release = _release.get()  # only inside a component's step: other lines keep their fields
        return True


class RedactingJsonFormatter(JsonFormatter):
    """A JsonFormatter that masks known secret values anywhere in the rendered line."""

    def __init__(self, secrets: Iterable[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._redact = Redactor(secrets)  # the one redaction function (deploy_manager.redaction)

    def format(self, record: logging.LogRecord) -> str:
        return self._redact.text(super().format(record))


def build_handler(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(ContextFilter(settings.cluster))
    handler.setFormatter(
        RedactingJsonFormatter(
            settings.secret_values(),
            fmt="%(asctime)s %(levelname)s %(name)s %(message)s %(cluster)s %(component)s %(run_id)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    return handler


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    """Install the JSON handler on the root logger, replacing an earlier one."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    handler = build_handler(settings, stream)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # uvicorn's access log would print request lines in its own format; ours carry the same in JSON.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # APScheduler reports every job execution at INFO: one line per poll is noise, its warnings are not.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    return handler
