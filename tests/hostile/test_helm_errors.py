"""Finding 8: helm's error detail is kept. Helm 4 spreads a template error over several lines (each nested
`include` with its template file and line) and lists a schema error's key on its own line; the step's error
keeps all of them, masked, on one line. The failing render writes nothing; the service stays healthy."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from deploy_manager.helm.runner import _error_detail
from tests.corelib import CONFIGMAP_TEMPLATE, write, write_values
from tests.hostile.conftest import Remote, Service

HELPERS = """\
{{- define "app.deep" -}}
{{ .Values.conf.app.missing.field }}
{{- end -}}
"""
USES_HELPER = CONFIGMAP_TEMPLATE + '  deep: {{ include "app.deep" . | quote }}\n'
SCHEMA = {
    "$schema": "https://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {"replicas": {"type": "integer"}},
}


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (
            'Error: c/templates/cm.yaml:6:8\n  executing "c/templates/cm.yaml" at <include "c.x" .>:\n'
            '    error calling include:\nc/templates/_h.tpl:2:10\n  executing "c.x" at <.Values.a.b>:\n'
            "    can't evaluate field b in type interface {}\n\nUse --debug flag to render out invalid YAML\n",
            'Error: c/templates/cm.yaml:6:8 executing "c/templates/cm.yaml" at <include "c.x" .>: error calling'
            ' include: c/templates/_h.tpl:2:10 executing "c.x" at <.Values.a.b>: can\'t evaluate field b in type'
            " interface {}",
        ),
        (
            "Error: values don't meet the specifications of the schema(s) in the following chart(s):\nc:\n"
            "- at '/replicas': got string, want integer\n",
            "Error: values don't meet the specifications of the schema(s) in the following chart(s): c:"
            " - at '/replicas': got string, want integer",
        ),
        ("walk.go:74: found symbolic link\nError: UPGRADE FAILED: boom\n", "Error: UPGRADE FAILED: boom"),
        ("something odd\n", "something odd"),
        ("", "no output"),
    ],
)
def test_error_detail_keeps_the_whole_error_block(output: str, expected: str) -> None:
    assert _error_detail(output) == expected


@pytest.mark.helm
@pytest.mark.slow
@pytest.mark.parametrize("case", ["template", "schema"])
def test_the_run_records_where_and_why(start: Callable[..., Service], remote: Remote, case: str) -> None:
    svc = start()
    if case == "template":
        write(remote.root / "charts/app/templates/_helpers.tpl", HELPERS)
        write(remote.root / "charts/app/templates/configmap.yaml", USES_HELPER)
        wanted = [
            "app/templates/configmap.yaml:",
            "error calling include:",
            "app/templates/_helpers.tpl:2:",
            "<.Values.conf.app.missing.field>",
        ]
    else:
        write(remote.root / "charts/app/values.schema.json", json.dumps(SCHEMA))
        write_values(remote.root, "dev", "app", {"replicas": "three", "conf": {"app": {"workers": 0}}})
        wanted = ["/replicas", "got string, want integer"]
    sha = remote.commit(f"broken {case}")
    writes = svc.writes()
    assert svc.push(sha).status_code == 202
    assert svc.queue.wait_idle(60)
    with svc.client() as c:
        run = c.get(f"/runs/{svc.runs()[0]['id']}").json()
    error = run["steps"][0]["error"]
    assert run["status"] == "failed" and all(w in error for w in wanted), error
    assert "\n" not in error
    assert svc.writes() == writes  # helm refused to render: it wrote nothing
    svc.assert_healthy()
