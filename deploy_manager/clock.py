"""The one wall clock of the product: aware UTC datetimes (Lease times) and ISO 8601 strings for records."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def now() -> str:
    """Run, step and release timestamps: ISO 8601 UTC with milliseconds."""
    return utcnow().isoformat(timespec="milliseconds")
