"""Bootstrap script rendering and step digests (pure)."""

from __future__ import annotations

import pytest

from deploy_manager.desired.bootstrap import render_script, resolve_image, step_digest
from deploy_manager.models.desired import BootstrapStep
from deploy_manager.models.errors import ConfigError

CTX = {"cluster": "dev", "component": "keystone", "release": "ks", "namespace": "os"}
VALUES = {"images": {"tags": {"ks_db_sync": "ks:1"}}, "conf": {"keystone": {"database": {"host": "db"}}}}


def test_render_context() -> None:
    out = render_script(
        "{{ cluster }}/{{ component }}/{{ release }}/{{ namespace }} {{ values.conf.keystone.database.host }}\n",
        file="s.sh.j2",
        values=VALUES,
        **CTX,
    )
    assert out == "dev/keystone/ks/os db\n"


def test_template_errors_name_the_file_and_line() -> None:
    with pytest.raises(ConfigError, match=r"^s\.sh\.j2:2: template error"):
        render_script("ok\n{% if %}\n", file="s.sh.j2", values={}, **CTX)
    with pytest.raises(ConfigError, match=r"^s\.sh\.j2: cannot render: .*'missing'"):
        render_script("{{ values.missing.x }}", file="s.sh.j2", values={}, **CTX)


def test_step_digest_inputs() -> None:
    step = BootstrapStep(name="db-sync", script="s", image="ks_db_sync", inputs=("conf.keystone.database",))
    base = step_digest(step, "script", VALUES)
    assert resolve_image(VALUES, "ks_db_sync") == "ks:1" and resolve_image(VALUES, None) is None
    other_values = {**VALUES, "replicas": 3}  # not an input, not the image: same digest
    assert step_digest(step, "script", other_values) == base
    assert step_digest(step, "script v2", VALUES) != base
    changed = {"images": {"tags": {"ks_db_sync": "ks:2"}}, "conf": VALUES["conf"]}
    assert step_digest(step, "script", changed) != base
    moved = {**VALUES, "conf": {"keystone": {"database": {"host": "db2"}}}}
    assert step_digest(step, "script", moved) != base
