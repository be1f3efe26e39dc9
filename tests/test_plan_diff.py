"""`plan --diff`: the deployed manifest (release record) against the new render, on the sandbox with real helm.

A conf change shows exactly the ConfigMap and the Deployment's checksum annotation; a password change shows the
Secret as `<changed>` and never the password; a no-op commit renders nothing.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from deploy_manager.cli import app
from deploy_manager.helm.runner import HelmRunner
from deploy_manager.kube.client import KubeClient
from deploy_manager.pipeline import Pipeline
from deploy_manager.source.git import GitSource
from deploy_manager.store.sqlite import RunStore
from tests.corelib import (
    api_deployment,
    apply_succeeded,
    commit,
    init_repo,
    sandbox_pipeline,
    write,
    write_chart,
    write_cluster,
    write_values,
)

pytestmark = pytest.mark.helm

_ns = itertools.count()

# A service chart the way the OpenStack charts are built: config in a ConfigMap, credentials in a Secret, and a
# Deployment that rolls when either changes (checksum annotation).
CHART = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-conf
data:
  app.conf: |
    debug = {{ .Values.conf.debug }}
    workers = {{ .Values.conf.workers }}
---
apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-db
data:
  password: {{ .Values.db.password | b64enc | quote }}
  user: {{ "keystone" | b64enc | quote }}
""" + api_deployment(
    annotations="""\
      annotations:
        checksum/config: {{ printf "%v%v" .Values.conf .Values.db | sha256sum | quote }}
"""
)

PASSWORD = "old-Secret-Pw-1"


def values(debug: bool = False, password: str = PASSWORD, workers: int = 2) -> dict[str, Any]:
    return {"conf": {"debug": debug, "workers": workers}, "db": {"password": password}}


class Env:
    def __init__(self, tmp_path: Path, sandbox: Any, helm_bin: Path) -> None:
        self.root = init_repo(tmp_path / "repo")
        self.state = tmp_path / "state"
        self.namespace = f"diff-{next(_ns)}"
        self.kubeconfig = Path(sandbox.kubeconfig)
        self.helm_bin = str(helm_bin)
        self.sandbox = sandbox
        write_chart(self.root, "charts/openstack/keystone", template=CHART)
        write_chart(self.root, "charts/openstack/memcached")
        comps = {
            "keystone": {"chart": "charts/openstack/keystone"},
            "memcached": {"chart": "charts/openstack/memcached"},
        }
        write_cluster(self.root, "dev", {"namespace": self.namespace, "components": comps})
        write_values(self.root, "dev", "keystone", values())
        write_values(self.root, "dev", "memcached", {"conf": {"size": 64}})
        commit(self.root, "init")

    def pipeline(self) -> Pipeline:
        return sandbox_pipeline(self.helm_bin, self.kubeconfig, self.state)

    def apply(self) -> None:
        apply_succeeded(self.pipeline(), self.root)

    def cli(self, *args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(
            app,
            [
                "plan",
                "--repo",
                str(self.root),
                "--cluster",
                "dev",
                "--diff",
                *args,
                "--kubeconfig",
                str(self.kubeconfig),
                "--state-dir",
                str(self.state),
                "--helm-bin",
                self.helm_bin,
            ],
            catch_exceptions=False,
        )
        return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def env(tmp_path: Path, sandbox_module: Any, helm_bin: Path) -> Env:
    return Env(tmp_path, sandbox_module, helm_bin)


def changed_lines(diff: str) -> list[str]:
    return [ln for ln in diff.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]


def test_conf_change_shows_the_configmap_and_the_checksum_annotation(env: Env) -> None:
    env.apply()
    write_values(env.root, "dev", "keystone", values(debug=True))
    commit(env.root, "debug on")
    code, out, err = env.cli("-o", "json")
    assert code == 0, err
    data = json.loads(out)
    keystone = next(a for a in data["actions"] if a["component"] == "keystone")
    assert keystone["action"] == "upgrade" and keystone["values_paths"] == ["conf.debug"]
    objects = {(o["kind"], o["name"]): o for o in keystone["diff"]}
    assert set(objects) == {("ConfigMap", "keystone-conf"), ("Deployment", "keystone-api")}
    assert {o["change"] for o in objects.values()} == {"changed"}
    assert {o["namespace"] for o in objects.values()} == {env.namespace}
    assert changed_lines(objects[("ConfigMap", "keystone-conf")]["diff"]) == ["-    debug = false", "+    debug = true"]
    dep = changed_lines(objects[("Deployment", "keystone-api")]["diff"])
    assert len(dep) == 2 and all("checksum/config:" in ln for ln in dep), dep
    memcached = next(a for a in data["actions"] if a["component"] == "memcached")
    assert memcached["action"] == "none" and "diff" not in memcached
    assert [(o["component"], o["kind"]) for o in data["diff"]] == [
        ("keystone", "ConfigMap"),
        ("keystone", "Deployment"),
    ]
    # The human form names the objects and the values path.
    code, text, _ = env.cli()
    assert code == 0 and "values changed: conf.debug" in text and "ConfigMap" in text and "checksum/config" in text


def test_a_changed_password_shows_changed_never_the_value(env: Env) -> None:
    env.apply()
    write_values(env.root, "dev", "keystone", values(password="new-Secret-Pw-2"))
    commit(env.root, "rotate")
    code, out, err = env.cli("-o", "json")
    assert code == 0, err
    for secret in ("old-Secret-Pw-1", "new-Secret-Pw-2"):
        assert secret not in out
        assert __import__("base64").b64encode(secret.encode()).decode() not in out
    keystone = next(a for a in json.loads(out)["actions"] if a["component"] == "keystone")
    assert keystone["values_paths"] == ["db.password"]
    secret_diff = next(o for o in keystone["diff"] if o["kind"] == "Secret")
    assert secret_diff["change"] == "changed"
    assert changed_lines(secret_diff["diff"]) == ["-  password: '***'", "+  password: <changed>"]
    assert {(o["kind"]) for o in keystone["diff"]} == {"Secret", "Deployment"}


def test_first_install_shows_added_objects(env: Env) -> None:
    code, out, err = env.cli("-o", "json")
    assert code == 0, err
    data = json.loads(out)
    assert {(o["component"], o["kind"], o["change"]) for o in data["diff"]} == {
        ("keystone", "ConfigMap", "added"),
        ("keystone", "Secret", "added"),
        ("keystone", "Deployment", "added"),
        ("memcached", "ConfigMap", "added"),
    }
    assert PASSWORD not in out


def test_a_noop_commit_renders_nothing(env: Env) -> None:
    env.apply()
    write(env.root / "README.md", "docs\n")
    commit(env.root, "docs")
    rendered = env.state / "charts" / "rendered"
    before = sorted(p.name for p in rendered.rglob("*")) if rendered.exists() else []
    code, out, _ = env.cli("-o", "json")
    assert code == 0 and json.loads(out)["diff"] == []
    code, text, _ = env.cli()
    assert code == 0 and "nothing to diff" in text
    after = sorted(p.name for p in rendered.rglob("*")) if rendered.exists() else []
    assert after == before


def test_the_render_is_taken_from_the_preflight_cache(env: Env) -> None:
    env.apply()
    write_values(env.root, "dev", "keystone", values(workers=4))
    write_values(env.root, "dev", "memcached", {"conf": {"size": 128}})
    commit(env.root, "two changes")
    assert env.cli("-o", "json")[0] == 0  # renders and caches both
    cached = [p for p in (env.state / "charts" / "rendered").rglob("*") if p.is_file()]
    assert cached and all(p.stat().st_mode & 0o077 == 0 for p in cached)
    env.helm_bin = "/nonexistent/helm"  # a second diff must not run helm at all
    code, out, err = env.cli("-o", "json")
    assert code == 0, err
    assert {o["component"] for o in json.loads(out)["diff"]} == {"keystone", "memcached"}


def test_the_real_keystone_chart_shows_its_config_secret_and_checksum(
    tmp_path: Path, sandbox_module: Any, helm_bin: Path
) -> None:
    """This checkout's keystone chart and demo values: a conf change is the config Secret (masked) and the
    Deployment's checksum annotation, nothing else."""
    import shutil

    import yaml

    root = init_repo(tmp_path / "repo")
    here = Path(__file__).resolve().parent.parent
    for part in ("values", "charts/openstack", "bootstrap"):
        shutil.copytree(here / part, root / part, symlinks=True)
    cluster_file = root / "values" / "demo" / "cluster.yaml"
    spec = yaml.safe_load(cluster_file.read_text())
    namespace = f"diff-real-{next(_ns)}"
    keep = {"keystone", "rabbitmq", "memcached"}
    spec = {**spec, "namespace": namespace, "components": {n: c for n, c in spec["components"].items() if n in keep}}
    write(cluster_file, yaml.safe_dump(spec, sort_keys=False))
    commit(root, "demo: keystone and what it needs")
    state = tmp_path / "state"
    kubeconfig = Path(sandbox_module.kubeconfig)
    pipe = Pipeline(
        helm=HelmRunner(str(helm_bin), kubeconfig=kubeconfig),
        kube=KubeClient(kubeconfig=kubeconfig),
        store=RunStore.in_dir(state),
        cache_dir=state / "charts",
    )
    run = pipe.apply(GitSource(str(root)), "demo", "HEAD", trigger="test")
    assert run.status.value == "succeeded", run.to_dict()
    keystone_values = root / "values" / "demo" / "keystone.yaml"
    data = yaml.safe_load(keystone_values.read_text())
    data["conf"]["keystone"]["token"]["expiration"] = 7200
    write(keystone_values, yaml.safe_dump(data, sort_keys=False))
    commit(root, "token expiration")
    result = CliRunner().invoke(
        app,
        ["plan", "--repo", str(root), "--cluster", "demo", "--diff", "-o", "json", "--kubeconfig", str(kubeconfig),
         "--state-dir", str(state), "--helm-bin", str(helm_bin)],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    keystone = next(a for a in plan["actions"] if a["component"] == "keystone")
    assert keystone["values_paths"] == ["conf.keystone.token.expiration"]
    changed = {(o["kind"], o["change"]): o for o in keystone["diff"]}
    assert set(changed) == {("Secret", "changed"), ("Deployment", "changed")}, sorted(changed)
    secret = changed[("Secret", "changed")]["diff"]
    assert [ln for ln in changed_lines(secret) if "<changed>" in ln] and "7200" not in secret
    deployment = changed_lines(changed[("Deployment", "changed")]["diff"])
    assert len(deployment) == 2 and all("checksum/config:" in ln for ln in deployment), deployment
    assert {o["component"] for o in plan["diff"]} == {"keystone"}
