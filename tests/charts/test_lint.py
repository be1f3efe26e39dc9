"""`helm lint --strict` of every chart with every example cluster's merged values for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from .layers import all_components, helm, template

COMPONENTS = list(all_components())


@pytest.mark.helm
@pytest.mark.parametrize("comp", COMPONENTS, ids=[f"{c.cluster}-{c.name}" for c in COMPONENTS])
def test_lint_strict(comp) -> None:  # type: ignore[no-untyped-def]
    result = helm("lint", "--strict", str(comp.chart), "--namespace", comp.namespace, values=comp.values)
    assert result.returncode == 0, f"{comp.cluster}/{comp.name}:\n{result.stdout}\n{result.stderr}"
    assert "[WARNING]" not in result.stdout, result.stdout


@pytest.mark.helm
def test_library_chart_is_shared_through_a_symlink_helm_follows() -> None:
    """Every application chart reaches the library as charts/common -> ../../common (a file:// dependency)."""
    charts = {c.chart for c in COMPONENTS}
    for chart in charts:
        link = chart / "charts" / "common"
        assert link.is_symlink() and link.resolve() == (chart.parent / "common").resolve(), chart


@pytest.mark.helm
def test_packaged_chart_carries_the_library_and_renders_the_same(tmp_path: Path) -> None:
    """`helm package` follows the symlink: the .tgz is self-contained and renders like the directory."""
    comp = next(c for c in COMPONENTS if c.name == "keystone")
    result = helm("package", str(comp.chart), "--destination", str(tmp_path))
    assert result.returncode == 0, result.stderr
    [tgz] = tmp_path.glob("keystone-*.tgz")
    packaged = helm("template", comp.release, str(tgz), "--namespace", comp.namespace, values=comp.values)
    assert packaged.returncode == 0, packaged.stderr
    assert packaged.stdout == template(comp)
