"""The one wall clock of the product: ISO 8601 UTC timestamps for records (runs, steps, releases)."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
