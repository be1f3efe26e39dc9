"""The cluster lease as the lock logic sees it (`deploy_manager.lease`), whatever stores it."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any


@dataclasses.dataclass(frozen=True)
class LeaseRecord:
    holder: str | None
    duration_seconds: int
    acquire_time: dt.datetime | None = None
    renew_time: dt.datetime | None = None
    transitions: int = 0
    resource_version: str | None = None

    def fingerprint(self) -> tuple[Any, ...]:
        return (self.holder, self.renew_time, self.resource_version)
