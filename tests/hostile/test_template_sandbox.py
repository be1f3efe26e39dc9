"""Found while fixing issue 11 (same class as finding 1: a push must never read what the pod holds): bootstrap
script templates come from the values repository and render inside the manager, so they render in Jinja2's
immutable sandbox. Reaching Python internals (which ran `os.popen` in the pod), mutating the values, and asking
for unbounded work or output (ranges, repetition, huge format widths and filter arguments, a script over 1 MiB)
fail the plan with `<script>: …`; nothing is executed or written, and the service stays healthy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from deploy_manager.desired.bootstrap import render_script
from deploy_manager.models.errors import ConfigError
from tests.corelib import write, write_values
from tests.hostile.conftest import Remote, Service

HOSTILE = {
    "code execution": '{{ cycler.__init__.__globals__.os.popen("id").read() }}',
    "python internals": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "mutating the values": "{{ values.conf.update({'x': 1}) }}",
    "a huge range": "{% for i in range(10**9) %}{% endfor %}",
    "nested ranges": "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}",
    "string repetition": '{{ "x" * 10**9 }}',
    "list repetition": "{{ [0] * 10**9 }}",
    "a huge power": "{{ 2 ** (10**9) }}",
    "a huge %-width": '{{ "%999999999d" % 1 }}',
    "a width as an argument": '{{ "%*d" % (10**9, 1) }}',
    "a huge format width": '{{ "{:>999999999}".format(1) }}',
    "a format width as an argument": '{{ "{:>{w}}".format(1, w=10**9) }}',
    "a huge filter argument": '{{ "x" | center(10**9) }}',
    "a huge batch": "{{ [1] | batch(10**9, 0) | list }}",
    "lipsum": "{{ lipsum(10**9) }}",
    "a script over 1 MiB": '{% for i in range(100) %}{{ "x" * 20000 }}{% endfor %}',
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_template_is_refused_with_its_file(case: str) -> None:
    with pytest.raises(ConfigError) as err:
        render_script(
            HOSTILE[case],
            file="bootstrap/app/init.sh.j2",
            values={"conf": {}},
            cluster="dev",
            component="app",
            release="app",
            namespace="ns",
        )
    assert str(err.value).startswith("bootstrap/app/init.sh.j2: ") and "\n" not in str(err.value)


def test_ordinary_templates_still_render() -> None:
    text = (
        '#!/bin/sh\nset -e\n{% for h in values.hosts %}ping -c1 {{ h }}\n{% endfor %}echo "{{ "%-6s|" % component }}"'
        ' {{ "{}-{}".format(release, namespace) }} {{ values.conf | tojson }}\n{{ "a\\nb" | indent(2) }}\n'
    )
    out = render_script(
        text,
        file="f",
        values={"hosts": ["a", "b"], "conf": {"k": 1}},
        cluster="dev",
        component="app",
        release="app",
        namespace="ns",
    )
    assert out == '#!/bin/sh\nset -e\nping -c1 a\nping -c1 b\necho "app   |" app-ns {"k": 1}\na\n  b\n'


@pytest.mark.helm
@pytest.mark.slow
def test_code_in_a_bootstrap_template_never_runs_in_the_service(
    start: Callable[..., Service], remote: Remote, tmp_path: Path
) -> None:
    svc = start()
    marker = tmp_path / "pwned"
    write(
        remote.root / "bootstrap/app/init.sh.j2",
        f'{{{{ cycler.__init__.__globals__.os.popen("touch {marker}").read() }}}}\n',
    )
    write_values(remote.root, "dev", "app", {"replicas": 1, "images": {"tags": {"init": "busybox:1"}}})
    remote.cluster(bootstrap=[{"name": "init", "image": "init"}])
    sha = remote.commit("a template that runs code")
    writes = svc.writes()
    assert svc.push(sha).status_code == 202
    assert svc.queue.wait_idle(60)
    run = svc.runs()[0]
    assert run["status"] == "failed" and run["error"].startswith("bootstrap/app/init.sh.j2: refused by the template")
    assert not marker.exists()
    with svc.client() as c:
        assert c.get("/plan").status_code == 422
    assert svc.writes() == writes
    svc.assert_healthy()
