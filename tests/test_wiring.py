"""`DM_SMOKE_AFTER_RUN` as the CLI reads it (the service passes its validated setting)."""

from __future__ import annotations

import pytest

from deploy_manager.models.errors import ConfigError
from deploy_manager.models.smoke import AfterRun
from deploy_manager.wiring import smoke_mode


@pytest.mark.parametrize(
    ("env", "given", "expected"),
    [
        (None, None, AfterRun.changed),
        ("all", None, AfterRun.all),
        (" NONE ", None, AfterRun.none),
        ("all", "changed", AfterRun.changed),  # an explicit setting wins over the environment
    ],
)
def test_smoke_mode(monkeypatch: pytest.MonkeyPatch, env: str | None, given: str | None, expected: AfterRun) -> None:
    if env is None:
        monkeypatch.delenv("DM_SMOKE_AFTER_RUN", raising=False)
    else:
        monkeypatch.setenv("DM_SMOKE_AFTER_RUN", env)
    assert smoke_mode(given) is expected


def test_a_bad_value_is_one_line_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DM_SMOKE_AFTER_RUN", "sometimes")
    with pytest.raises(ConfigError, match=r"^DM_SMOKE_AFTER_RUN must be one of changed, all, none, not 'sometimes'$"):
        smoke_mode()
