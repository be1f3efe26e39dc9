"""Pre-flight for every write (issue 10, item 7): every component that will be written is rendered first, a
single one included, with a cache keyed by (chart digest, values digest); a render or schema error exits 2
naming the component and helm's template file and line or the schema key, with zero writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from deploy_manager.cli import app
from deploy_manager.helm.runner import HelmRunner
from deploy_manager.models.run import RunStatus
from tests.corelib import commit, write, write_chart, write_values
from tests.test_pipeline import Env, env, writes  # noqa: F401  (fixture)

pytestmark = pytest.mark.helm

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {"replicas": {"type": "integer"}},
}


class CountingHelm(HelmRunner):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.templates: list[str] = []

    def template(self, **kwargs: Any) -> str:
        self.templates.append(str(kwargs["release"]))
        return super().template(**kwargs)


def cli_apply(env: Env) -> Any:  # noqa: F811
    common = ["--kubeconfig", str(env.kubeconfig), "--state-dir", str(env.state), "--helm-bin", env.helm_bin]
    return CliRunner().invoke(app, ["apply", "--repo", str(env.root), "--cluster", "dev", *common])


def test_a_single_schema_error_exits_2_naming_the_component_and_the_key(env: Env) -> None:  # noqa: F811
    assert cli_apply(env).exit_code == 0
    write(env.root / "charts/openstack/glance/values.schema.json", json.dumps(SCHEMA))
    write_values(env.root, "dev", "glance", {"replicas": "two"})
    commit(env.root, "glance replicas as a string")
    env.sandbox.reset_stats()
    res = cli_apply(env)
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1 and "(component glance)" in res.stderr
    assert "/replicas" in res.stderr and "got string, want integer" in res.stderr
    assert writes(env.sandbox) == 0


def test_a_single_template_error_exits_2_naming_the_template_file_and_line(env: Env) -> None:  # noqa: F811
    assert cli_apply(env).exit_code == 0
    write_chart(env.root, "charts/openstack/nova", template="a: 1\nb: {{ .Values.x.y.z }}\n")
    commit(env.root, "nova template error")
    env.sandbox.reset_stats()
    res = cli_apply(env)
    assert res.exit_code == 2, res.stdout
    assert "(component nova)" in res.stderr and "templates/configmap.yaml:2" in res.stderr
    assert writes(env.sandbox) == 0


def test_renders_are_cached_by_chart_and_values_digest(env: Env) -> None:  # noqa: F811
    helm = CountingHelm(env.helm_bin, kubeconfig=env.kubeconfig)
    pipe = env.pipeline()
    pipe.helm = helm
    assert pipe.apply(env.source(), env.cluster, "HEAD", trigger="test").status is RunStatus.succeeded
    assert sorted(helm.templates) == sorted(["rabbitmq", "memcached", "keystone", "glance", "placement", "nova"])
    helm.templates.clear()
    write_values(env.root, "dev", "glance", {"replicas": 4})
    commit(env.root, "glance replicas")
    assert pipe.apply(env.source(), env.cluster, "HEAD", trigger="test").status is RunStatus.succeeded
    # One write with nothing before it: helm's own render precedes its first write, no separate render.
    assert helm.templates == []
    write_values(env.root, "dev", "glance", {"replicas": 5})
    write_values(env.root, "dev", "nova", {"replicas": 5})
    commit(env.root, "glance and nova replicas")
    assert pipe.apply(env.source(), env.cluster, "HEAD", trigger="test").status is RunStatus.succeeded
    assert sorted(helm.templates) == ["glance", "nova"]  # two writes: both rendered first
    # The same chart and values again (a revert, a retry): no render, the cache answers.
    helm.templates.clear()
    write_values(env.root, "dev", "glance", {"replicas": 1, "conf": {"glance": {"debug": False}}})
    write_values(env.root, "dev", "nova", {"replicas": 1, "conf": {"nova": {"debug": False}}})
    commit(env.root, "glance and nova back")
    assert pipe.apply(env.source(), env.cluster, "HEAD", trigger="test").status is RunStatus.succeeded
    assert helm.templates == []
    assert any(Path(env.state, "charts", "rendered").rglob("*"))
