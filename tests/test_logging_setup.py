"""JSON log lines: context fields, `key=%s` extraction, secrets masked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from deploy_manager.config import Settings
from deploy_manager.logging_setup import configure_logging, keyed_args, log_context

SECRET = "webhook-secret-xyz-123"
TOKEN = "reader-token-abc-456"


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    settings = Settings(repo_url="/srv/values", cluster="dev", github_webhook_secret=SECRET, read_tokens=TOKEN)
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure_logging(settings, stream)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def records(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_line_carries_cluster_component_and_run_id(lines: io.StringIO) -> None:
    log = logging.getLogger("deploy_manager.test")
    log.info("plain")
    with log_context(run_id=7, component="keystone"):
        log.info("inside")
    log.info("explicit", extra={"run_id": 9})
    plain, inside, explicit = records(lines)
    assert (plain["cluster"], plain["component"], plain["run_id"]) == ("dev", None, None)
    assert (inside["component"], inside["run_id"]) == ("keystone", 7)
    assert explicit["run_id"] == 9 and explicit["level"] == "INFO" and explicit["logger"] == "deploy_manager.test"


def test_key_value_messages_fill_the_fields(lines: io.StringIO) -> None:
    logging.getLogger("deploy_manager.pipeline").info(
        "cluster=%s component=%s namespace=%s release=%s action=%s", "dev", "nova", "openstack", "nova-api", "upgrade"
    )
    (line,) = records(lines)
    assert line["component"] == "nova" and line["action"] == "upgrade"
    assert line["namespace"] == "openstack" and line["release"] == "nova-api"
    assert line["message"] == "cluster=dev component=nova namespace=openstack release=nova-api action=upgrade"


@pytest.mark.parametrize(
    ("msg", "args", "fields"),
    [
        ("component=%s took %.2fs", ("nova", 1.5), {"component": "nova"}),
        ("100%% done component=%s", ("nova",), {"component": "nova"}),
        ("component=%s %s", ("nova",), {}),  # placeholders and args disagree: leave it alone
        ("%(component)s", ("x",), {}),
    ],
)
def test_keyed_args(msg: str, args: tuple, fields: dict) -> None:
    assert keyed_args(msg, args) == fields


def test_secrets_are_masked_wherever_they_appear(lines: io.StringIO) -> None:
    log = logging.getLogger("deploy_manager.test")
    log.warning("secret %s in args", SECRET)
    log.warning(f"token {TOKEN} in the message")
    log.warning("in extra", extra={"header": f"Bearer {TOKEN}"})
    try:
        raise ValueError(SECRET)
    except ValueError:
        log.exception("in a traceback")
    text = lines.getvalue()
    assert SECRET not in text and TOKEN not in text
    assert text.count("***") >= 4
