"""Name the installed provider and target plugins without importing them.

The inventory validator needs the names on every command; importing the plugin modules
(and httpx with them) would slow `rotate check` and every other start-up for nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib.metadata import entry_points
from typing import Any

PROVIDER_GROUP = "rotator.providers"
TARGET_GROUP = "rotator.targets"
SIGNAL_GROUP = "rotator.signals"


@cache
def known_provider_names() -> frozenset[str]:
    return frozenset(ep.name for ep in entry_points(group=PROVIDER_GROUP))


@cache
def known_target_names() -> frozenset[str]:
    return frozenset(ep.name for ep in entry_points(group=TARGET_GROUP))


@cache
def known_signal_names() -> frozenset[str]:
    return frozenset(ep.name for ep in entry_points(group=SIGNAL_GROUP))


def target_option_problems(kind: str, options: Mapping[str, Any]) -> list[str]:
    """Ask the target plugin which of its options are missing or unknown."""
    from rotator.targets.base import get_target

    cls = get_target(kind)
    return list(cls.validate_options(options))
