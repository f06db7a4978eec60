"""Say when a staged value has soaked long enough and when production monitoring ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schedules.localtime import require_aware


def soak_over(staged_at: datetime, soak: timedelta) -> datetime:
    """Return the instant, in UTC, from which a value staged at `staged_at` may be validated."""
    require_aware(staged_at, "staged_at")
    return (staged_at + soak).astimezone(UTC)


def monitoring_over(promoted_at: datetime, monitoring: timedelta) -> datetime:
    """Return the instant, in UTC, at which production monitoring after a promote ends."""
    require_aware(promoted_at, "promoted_at")
    return (promoted_at + monitoring).astimezone(UTC)
