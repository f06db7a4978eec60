"""Read and write the durations of the inventory (`soak = "24h"`, `monitoring = "1d12h"`)."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))

# Largest unit first and each unit at most once, so "1d12h" reads one way only.
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")

_EXPECTED = (
    "expected whole numbers with units d, h, m or s, largest unit first, "
    "such as '24h', '30m', '7d', '90s' or '1d12h'"
)


def parse_duration(text: str) -> timedelta:
    """Return the duration written as `text`, such as "24h", "30m", "7d", "90s" or "1d12h"."""
    if not isinstance(text, str):
        raise ValueError(f"duration {text!r} is a {type(text).__name__}: {_EXPECTED}")
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"duration {text!r} is not understood: {_EXPECTED}")
    seconds = sum(
        int(amount) * size
        for amount, (_, size) in zip(match.groups(), _UNITS, strict=True)
        if amount is not None
    )
    return timedelta(seconds=seconds)


def format_duration(duration: timedelta) -> str:
    """Return `duration` in the notation `parse_duration` reads, such as "1d12h".

    Fractions of a second are dropped; a negative duration is refused because no
    setting of the inventory can hold one.
    """
    if duration < timedelta(0):
        raise ValueError(f"duration {duration} is negative: expected zero or more")
    remaining = int(duration.total_seconds())
    parts = []
    for unit, size in _UNITS:
        amount, remaining = divmod(remaining, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts) or "0s"
