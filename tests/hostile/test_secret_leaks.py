"""Finding 3: no secret leaks, whatever its length or shape, through any surface: the service's log, `/readyz`,
`/runs`, `/runs/{id}`, `/plan`, `/releases`, the status page, the CLI (`apply`, `history`, `history -o json`) and
the database file itself. Secrets come from the values (password/token/secret/*key keys, a path listed under
`secrets:`; short, 64 and 600 characters, special characters, PEM keys with and without their trailing newline)
and from the settings (the webhook secret echoed by a chart; a long token in DM_REPO_URL). Masking happens
before any cut, and multi-line values are masked line by line."""

from __future__ import annotations

import base64
import html
import json
import secrets
import socket
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from deploy_manager.cli import app as cli
from deploy_manager.redaction import Redactor, cut, redact, redact_cut
from tests.corelib import write_chart, write_values
from tests.hostile.conftest import Remote, Service
from tests.servicelib import READ_TOKEN, WEBHOOK_SECRET, WRITE_TOKEN

WINDOW = 10  # any 10 characters of a secret in a surface count as a leak


def _pem(label: str) -> str:
    body = base64.b64encode(secrets.token_bytes(300)).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


SHORT = "Zq7!" + secrets.token_hex(2)  # 8 characters
HEX64 = secrets.token_hex(32)
LONG = secrets.token_urlsafe(450)[:600]  # longer than every cut (200 in /readyz, 1500 for helm's error)
SPECIAL = 'p@ss:w/rd%&"<b>' + secrets.token_hex(4)
PEM_NL = _pem("PRIVATE KEY")  # `|`: with its trailing newline
PEM_NO_NL = _pem("RSA PRIVATE KEY").rstrip("\n")  # `|-`: without
MARKED = "ldap-" + secrets.token_hex(8)  # not under a secret-looking key: listed in `secrets:`
VALUE_SECRETS = {
    "db_password": SHORT,
    "api_token": HEX64,
    "long_secret": LONG,
    "bind_password": SPECIAL,
    "tls_key": PEM_NL,
    "ca_key": PEM_NO_NL,
}

# Echoes every secret (and the webhook secret, a settings secret, put in the values under a plain key) in
# helm's error: the worst case, a chart author's `fail` printing what it was given.
LEAKY_TEMPLATE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-conf
data:
{{- if .Values.leak }}
  x: {{ fail (printf "cannot reach db with %s|%s|%s|%s|%s|%s|%s|%s" .Values.conf.db_password
      .Values.conf.api_token .Values.conf.long_secret .Values.conf.bind_password .Values.conf.tls_key
      .Values.conf.ca_key .Values.conf.ldap.bind .Values.conf.note) }}
{{- end }}
  values.json: {{ toJson .Values | quote }}
"""


def leaks(text: str, secret_values: Iterable[str]) -> list[str]:
    """The pieces of secrets found in `text` (also HTML-unescaped and JSON-unescaped)."""
    forms = {text, html.unescape(text), text.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")}
    found: list[str] = []
    for secret in secret_values:
        for line in secret.splitlines():
            line = line.strip()
            if line.startswith("-----"):
                continue  # the PEM armour is no secret
            windows = [line] if len(line) <= WINDOW else [line[i : i + WINDOW] for i in range(len(line) - WINDOW + 1)]
            found += [w for w in windows if any(w in f for f in forms)]
    return found


def surfaces(svc: Service, tmp_path: Path, run_ids: Iterable[int], cli_args: list[str] | None = None) -> dict[str, str]:
    """Every place a secret could show up, as text."""
    out: dict[str, str] = {"log": svc.log.getvalue()}
    with svc.client() as c:
        out["/readyz"] = c.get("/readyz").text
        out["/runs"] = c.get("/runs").text
        for run_id in run_ids:
            out[f"/runs/{run_id}"] = c.get(f"/runs/{run_id}").text
        out["/plan"] = c.get("/plan").text
        out["/releases"] = c.get("/releases").text
        out["status page"] = c.get("/").text
    runner = CliRunner()
    state = ["--state-dir", str(svc.settings.state_dir)]
    for fmt in ("json", "table"):
        result = runner.invoke(cli, ["history", "--cluster", "dev", "-o", fmt, *state])
        assert result.exit_code == 0, result.output
        out[f"CLI history -o {fmt}"] = result.output
    if cli_args is not None:
        result = runner.invoke(cli, cli_args)
        out["CLI " + cli_args[0]] = result.output
    db = svc.settings.db_path
    out["database"] = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*")).decode("utf-8", "replace")
    return out


@pytest.mark.helm
@pytest.mark.slow
def test_value_and_setting_secrets_never_leak_through_any_surface(
    start: Callable[..., Service], remote: Remote, tmp_path: Path
) -> None:
    svc = start()
    write_chart(remote.root, "charts/app", template=LEAKY_TEMPLATE)
    values = {
        "leak": True,
        "conf": {**VALUE_SECRETS, "ldap": {"bind": MARKED}, "note": WEBHOOK_SECRET, "app": {"workers": 1}},
    }
    write_values(remote.root, "dev", "app", values)
    remote.cluster(secrets=["conf.ldap.bind"])
    text = (remote.root / "values/dev/app.yaml").read_text()
    assert yaml.safe_load(text)["conf"]["tls_key"] == PEM_NL and yaml.safe_load(text)["conf"]["ca_key"] == PEM_NO_NL
    sha = remote.commit("a chart that prints its secrets")
    writes = svc.writes()
    assert svc.push(sha).status_code == 202
    assert svc.queue.wait_idle(90)
    run = svc.runs()[0]
    with svc.client() as c:
        detail = c.get(f"/runs/{run['id']}").json()
    step = detail["steps"][0]
    # The chart really printed them (so the test means something), and every one was masked.
    assert run["status"] == "failed" and "cannot reach db with ***|***|***|***|***" in step["error"], step
    assert "***" in (step["output_tail"] or "")
    assert svc.writes() == writes  # the render failed before helm wrote anything

    cli_apply = [*svc.cli_args("apply", remote.root, tmp_path / "cli-state"), "--helm-bin", svc.settings.helm_bin]
    every = surfaces(svc, tmp_path, [run["id"]], cli_apply)
    assert "cannot reach db with ***" in every["CLI apply"]
    all_secrets = [*VALUE_SECRETS.values(), MARKED, WEBHOOK_SECRET, READ_TOKEN, WRITE_TOKEN]
    # The CLI is another program: the service's settings (the webhook secret) are not secrets it knows of.
    value_secrets = [*VALUE_SECRETS.values(), MARKED]
    found = {name: leaks(text, value_secrets if name == "CLI apply" else all_secrets) for name, text in every.items()}
    assert not any(found.values()), {k: v[:3] for k, v in found.items() if v}
    assert svc.writes() == writes
    svc.assert_healthy()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.helm
@pytest.mark.slow
def test_a_long_token_in_the_repo_url_never_leaks_from_readyz_runs_logs_or_the_database(
    start: Callable[..., Service], tmp_path: Path
) -> None:
    token = "ghs_" + secrets.token_urlsafe(300)  # far longer than /readyz's 200 characters
    url = f"http://x-access-token:{token}@127.0.0.1:{_closed_port()}/values.git"
    svc = start(repo_url=url)
    writes = svc.writes()
    with svc.client(None) as c:
        ready = c.get("/readyz")
    assert ready.status_code == 200  # git down is reported, never a reason to leave the Service (issue 15)
    git_check = ready.json()["checks"]["git"]
    assert git_check.startswith("error:") and len(git_check) <= 200
    assert "***@127.0.0.1" in git_check and "clone failed: fatal:" in git_check  # git's own words, masked
    with svc.client(WRITE_TOKEN) as c:
        assert c.post("/runs").status_code == 202
    assert svc.queue.wait_idle(60)
    run = svc.runs()[0]
    assert run["status"] == "failed" and "unable to access" in run["error"]
    every = surfaces(svc, tmp_path, [run["id"]])
    found = {name: leaks(text, [token]) for name, text in every.items()}
    assert not any(found.values()), {k: v[:3] for k, v in found.items() if v}
    assert svc.writes() == writes
    with svc.client(None) as c:
        assert c.get("/healthz").status_code == 200  # alive; not ready while git is unreachable, by design


# -- the one redaction function, table-tested ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret_values", "expected"),
    [
        ("token abcdef123 here", ["abcdef123"], "token *** here"),
        ("abcdef123456", ["abcdef", "abcdef123456"], "***"),  # the longest first: masked whole
        (PEM_NL, [PEM_NL], "***"),
        (PEM_NL.rstrip("\n") + " and more", [PEM_NL], "*** and more"),  # without its trailing newline
        (
            "key:\n  " + "\n  ".join(PEM_NO_NL.splitlines()),
            [PEM_NO_NL],
            "key:\n  " + "\n  ".join(["***"] * len(PEM_NO_NL.splitlines())),
        ),
        (json.dumps({"k": PEM_NL}), [PEM_NL], '{"k": "***"}'),  # JSON-escaped
        ("https://u:p%40ss%2Fword@h/", ["p@ss/word"], "https://u:***@h/"),  # URL-encoded
        ("nothing here", [], "nothing here"),
    ],
)
def test_redact_masks_every_form(text: str, secret_values: list[str], expected: str) -> None:
    assert redact(text, secret_values) == expected


def test_mask_first_then_cut() -> None:
    text = "error: " + LONG
    assert LONG[:20] not in redact_cut(text, 200, [LONG]) and redact_cut(text, 200, [LONG]) == "error: ***"
    assert len(redact_cut("x" * 500, 200)) == 200 and cut("abc", 10) == "abc"
    assert Redactor([LONG]).cut("a" * 300 + LONG, 100).count(LONG[:10]) == 0


def test_assignments_are_masked_only_in_tool_output() -> None:
    assert redact("password: hunter22", (), assignments=True) == "password: ***"
    assert redact("values/dev/app.yaml:3: conf.password: bad", ()) == "values/dev/app.yaml:3: conf.password: bad"
    assert Redactor()(None) is None and Redactor()("") == ""
