"""values/_common/smoke.yaml + values/<cluster>/smoke.yaml: layers, validation with file/line/key errors, the
scripts rendered in the bootstrap scripts' sandbox and context, and the published schema (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from deploy_manager.desired.loader import load_cluster
from deploy_manager.desired.smoke import SMOKE_SCHEMA_PATH, json_schema
from deploy_manager.models.errors import ConfigError
from deploy_manager.source.git import GitSource
from tests.corelib import commit, init_repo, simple_cluster, write, write_values

SCRIPT = "#!/bin/bash\necho {{ component }} {{ release }} {{ namespace }} {{ cluster }} {{ values.replicas }}\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = init_repo(tmp_path / "repo")
    simple_cluster(root, "dev")
    write_values(root, "_common", "_global", {"images": {"tags": {"openstack_client": "example/osc:1"}}})
    write(root / "bootstrap/smoke/token-issue.sh.j2", SCRIPT)
    write(root / "bootstrap/smoke/server-boot.sh.j2", SCRIPT)
    return root


def smoke_file(root: Path, layer: str, checks: list[dict[str, Any]] | str) -> None:
    text = checks if isinstance(checks, str) else yaml.safe_dump({"checks": checks}, sort_keys=False)
    write(root / "values" / layer / "smoke.yaml", text)


def load(root: Path) -> Any:
    sha = commit(root, "change")
    return load_cluster(GitSource(str(root)), sha, "dev")


TOKEN = {"name": "token-issue", "component": "keystone", "gates": ["keystone"], "timeout": 60, "sla": 5}


def test_the_issue_form_loads_and_renders_in_the_bootstrap_context(repo: Path) -> None:
    smoke_file(
        repo,
        "dev",
        [
            {**TOKEN, "script": "bootstrap/smoke/token-issue.sh.j2", "image": "openstack_client"},
            {"name": "server-boot", "component": "nova", "gates": [], "schedule": 600},
        ],
    )
    checks = {c.name: c for c in load(repo).smoke}
    token, boot = checks["token-issue"], checks["server-boot"]
    assert (token.component, token.gates, token.timeout, token.sla, token.image) == (
        "keystone",
        ("keystone",),
        60,
        5,
        "openstack_client",
    )
    assert token.rendered == "#!/bin/bash\necho keystone keystone openstack dev 1\n"
    # Defaults: script bootstrap/smoke/<name>.sh.j2, image openstack_client, timeout 300, no SLA.
    assert (boot.script, boot.image, boot.timeout, boot.sla, boot.schedule) == (
        "bootstrap/smoke/server-boot.sh.j2",
        "openstack_client",
        300,
        None,
        600,
    )


def test_no_smoke_file_means_no_checks(repo: Path) -> None:
    assert load(repo).smoke == ()


def test_the_cluster_layer_overrides_a_common_check_key_by_key_and_adds_its_own(repo: Path) -> None:
    smoke_file(repo, "_common", [TOKEN, {"name": "volume-attach", "component": "cinder", "script": "x.sh.j2"}])
    smoke_file(repo, "dev", [{"name": "token-issue", "sla": 2}, {"name": "server-boot", "component": "nova"}])
    checks = {c.name: c for c in load(repo).smoke}
    # cinder is not deployed by this cluster: the common check is left out (its script is never read).
    assert sorted(checks) == ["server-boot", "token-issue"]
    assert (checks["token-issue"].sla, checks["token-issue"].timeout, checks["token-issue"].gates) == (
        2,
        60,
        ("keystone",),
    )


@pytest.mark.parametrize(
    ("layer", "text", "pattern"),
    [
        (
            "dev",
            [{**TOKEN, "component": "cinder"}],
            r"^values/dev/smoke\.yaml:\d+: checks\.0\.component: unknown component 'cinder'",
        ),
        (
            "dev",
            [{**TOKEN, "gates": ["horizon"]}],
            r"^values/dev/smoke\.yaml:\d+: checks\.0\.gates: unknown component 'horizon'",
        ),
        (
            "dev",
            [{**TOKEN, "image": "nope"}],
            r"^values/dev/smoke\.yaml:\d+: checks\.0\.image: images\.tags\.nope is not set",
        ),
        (
            "dev",
            [{**TOKEN, "script": "bootstrap/smoke/missing.sh.j2"}],
            r"checks\.0\.script: smoke script bootstrap/smoke/missing\.sh\.j2 not found",
        ),
        (
            "dev",
            [{**TOKEN, "name": "Token_Issue"}],
            r"^values/dev/smoke\.yaml:\d+: checks\.0\.name: String should match pattern",
        ),
        ("dev", [TOKEN, TOKEN], r"^values/dev/smoke\.yaml:1: <root>: duplicate check name\(s\): token-issue"),
        ("dev", [{**TOKEN, "timeout": 0}], r"checks\.0\.timeout: Input should be greater than 0"),
        ("dev", [{**TOKEN, "sla": -1}], r"checks\.0\.sla: Input should be greater than 0"),
        ("dev", [{**TOKEN, "on_failure": "explode"}], r"checks\.0\.on_failure: Input should be 'rollback' or 'none'"),
        ("dev", [{**TOKEN, "bogus": 1}], r"checks\.0\.bogus: Extra inputs are not permitted"),
        ("dev", [{k: v for k, v in TOKEN.items() if k != "component"}], r"checks\.0\.component: Field required"),
        ("dev", "checks: [\n  {name: a\n", r"^values/dev/smoke\.yaml:\d+: invalid YAML"),
        ("dev", "- a\n- b\n", r"^values/dev/smoke\.yaml:1: must be a mapping with `checks`"),
        (
            "_common",
            [{**TOKEN, "timeout": "soon"}],
            r"^values/_common/smoke\.yaml:\d+: checks\.0\.timeout: invalid duration",
        ),
    ],
)
def test_errors_name_file_line_and_key(repo: Path, layer: str, text: Any, pattern: str) -> None:
    smoke_file(repo, layer, text)
    with pytest.raises(ConfigError, match=pattern) as exc:
        load(repo)
    assert "\n" not in str(exc.value)


def test_the_error_line_is_the_keys_line(repo: Path) -> None:
    smoke_file(repo, "dev", "checks:\n  - name: token-issue\n    component: keystone\n    gates: [nope]\n")
    with pytest.raises(ConfigError, match=r"^values/dev/smoke\.yaml:4: checks\.0\.gates: unknown component 'nope'"):
        load(repo)


def test_scripts_render_in_the_sandbox(repo: Path) -> None:
    write(repo / "bootstrap/smoke/token-issue.sh.j2", "{{ cycler.__init__.__globals__ }}\n")
    smoke_file(repo, "dev", [TOKEN])
    with pytest.raises(ConfigError, match=r"^bootstrap/smoke/token-issue\.sh\.j2: "):
        load(repo)


def test_published_schema_is_up_to_date_and_validates_the_issue_form() -> None:
    assert SMOKE_SCHEMA_PATH.read_text() == json_schema(), "run: python -m deploy_manager.desired.smoke"
    schema = json.loads(SMOKE_SCHEMA_PATH.read_text())
    doc = {"checks": [{**TOKEN, "script": "bootstrap/smoke/token-issue.sh.j2", "image": "openstack_client"}]}
    jsonschema.validate(doc, schema)
    doc["checks"][0]["bogus"] = 1
    with pytest.raises(jsonschema.ValidationError, match="bogus"):
        jsonschema.validate(doc, schema)


def test_the_example_clusters_checks_load() -> None:
    """The shipped checks (values/_common/smoke.yaml) load and render for every example cluster."""
    root = Path(__file__).resolve().parents[2]
    schema = json.loads(SMOKE_SCHEMA_PATH.read_text())
    jsonschema.validate(yaml.safe_load((root / "values/_common/smoke.yaml").read_text()), schema)
