"""What a monitoring signal is: for an environment and a span, a verdict and its figures.

A signal answers `ok`, `degraded` (with the reason and the figures) or `unknown` (the
source could not answer: unreachable, refused, malformed). It never raises for a bad
answer: `unknown` is a verdict the gates act on (wait, then tell a person), not an error.

Signals are plugins of the entry-point group `rotator.signals`, registered exactly like
providers and targets (`pyproject.toml`); `get_signal(kind)` loads them once per process.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, ClassVar

from rotator.errors import RotatorError, UnknownNameError

if TYPE_CHECKING:
    from providers.http import HttpClient
    from rotator.credentials import InventoryCredentials

SIGNAL_GROUP = "rotator.signals"
OK, DEGRADED, UNKNOWN = "ok", "degraded", "unknown"
DEFAULT_MAX_ERROR_RATE = {"production": 0.01, "staging": 0.02}
"""The deployment strategy's alerts: production error rate > 1%, staging > 2%."""


class SignalError(RotatorError):
    """A signal plugin is broken (not a bad answer from its source: that is `unknown`)."""


@dataclass(frozen=True)
class Span:
    """The window judged (`start`..`end`) and the same length before the change (baseline)."""

    start: datetime
    end: datetime
    baseline_start: datetime
    baseline_end: datetime


@dataclass(frozen=True)
class Verdict:
    """One signal's answer; `figures` are numbers and short strings, never a value."""

    signal: str
    environment: str
    status: str
    reason: str = ""
    figures: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "environment": self.environment,
            "status": self.status,
            "reason": self.reason,
            "figures": dict(self.figures),
        }

    def line(self) -> str:
        """One line for people: `production rollbar degraded: error rate 5.00% > 1.00% ...`."""
        text = f"{self.environment} {self.signal} {self.status}"
        return f"{text}: {self.reason}" if self.reason else text


@dataclass(frozen=True)
class SignalContext:
    """What a signal may use: the shared HTTP layer and the tool's credentials."""

    http: HttpClient
    credentials: InventoryCredentials
    environment: str
    health: Any = None  # the environment's `HealthCheck` (health-url), None when it has none
    sleep: Callable[[float], None] = time.sleep


class Signal(ABC):
    """A source of verdicts for one environment, built from its inventory options."""

    kind: ClassVar[str]
    required_options: ClassVar[tuple[str, ...]] = ()
    optional_options: ClassVar[tuple[str, ...]] = ()
    credential_options: ClassVar[tuple[str, ...]] = ()
    """Options that name a `[credentials]` entry (checked by the inventory and `rotate check`)."""

    def __init__(self, options: Mapping[str, Any], environment: str) -> None:
        self.options = dict(options)
        self.environment = environment

    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> list[str]:
        """Return problems as `key: found ..., expected ...` (the inventory adds the path)."""
        problems = []
        allowed = set(cls.required_options) | set(cls.optional_options)
        for key in cls.required_options:
            if key not in options:
                problems.append(f"{key}: found nothing, expected a value")
        for key in options:
            if key not in allowed:
                problems.append(
                    f"{key}: unknown key, expected one of {', '.join(sorted(allowed)) or 'none'}"
                )
        rate = options.get("max_error_rate")
        if rate is not None and (
            not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 < rate < 1
        ):
            problems.append(
                f"max_error_rate: found {rate!r}, expected a fraction such as 0.01 (1%)"
            )
        for key in cls.credential_options:
            value = options.get(key)
            if value is not None and not isinstance(value, str):
                problems.append(
                    f"{key}: found a {type(value).__name__} (not shown), expected the name of "
                    "a [credentials] entry, never the value itself"
                )
        return problems

    def max_error_rate(self) -> float:
        rate = self.options.get("max_error_rate")
        if isinstance(rate, int | float):
            return float(rate)
        return DEFAULT_MAX_ERROR_RATE.get(self.environment, 0.02)

    @abstractmethod
    def verdict(self, ctx: SignalContext, span: Span) -> Verdict:
        """Judge `span` against its baseline. Never raise for the source's answer."""


def judge_rate(
    signal: str,
    env: str,
    current: tuple[int, int],
    baseline: tuple[int, int],
    threshold: float,
    what: str = "error rate",
) -> Verdict:
    """Degraded when the rate over the span is above `threshold` and above the baseline.

    `current` and `baseline` are (errors, events). A rate already that high before the
    change is reported with its figures but is not this change's doing: it stays ok.
    """
    errors, events = current
    b_errors, b_events = baseline
    rate = errors / events if events else 0.0
    b_rate = b_errors / b_events if b_events else 0.0
    figures = {
        "errors": errors,
        "events": events,
        "error_rate": round(rate, 6),
        "baseline_errors": b_errors,
        "baseline_events": b_events,
        "baseline_error_rate": round(b_rate, 6),
        "threshold": threshold,
    }
    shown = (
        f"{what} {rate:.2%} ({errors}/{events}) vs {b_rate:.2%} before the change "
        f"({b_errors}/{b_events}); threshold {threshold:.2%}"
    )
    if rate > threshold and rate > b_rate:
        return Verdict(signal, env, DEGRADED, shown, figures)
    return Verdict(signal, env, OK, shown, figures)


def load_signals(found: Iterable[EntryPoint] | None = None) -> dict[str, type[Signal]]:
    """Load every plugin of `rotator.signals`, refusing duplicate names and wrong kinds."""
    eps = list(entry_points(group=SIGNAL_GROUP) if found is None else found)
    signals: dict[str, type[Signal]] = {}
    for ep in eps:
        if ep.name in signals:
            raise SignalError(f"two signal plugins are named {ep.name!r}; uninstall one of them")
        try:
            loaded = ep.load()
        except Exception as exc:
            raise SignalError(
                f"signal plugin {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}"
            ) from exc
        if not (isinstance(loaded, type) and issubclass(loaded, Signal)):
            raise SignalError(f"signal plugin {ep.name!r} ({ep.value}) is not a Signal class")
        if getattr(loaded, "kind", None) != ep.name:
            raise SignalError(
                f"signal plugin {ep.name!r} declares kind {getattr(loaded, 'kind', None)!r}; "
                "the entry-point name and kind must match"
            )
        signals[ep.name] = loaded
    return signals


@cache
def _installed() -> dict[str, type[Signal]]:
    return load_signals()


def get_signal(kind: str) -> type[Signal]:
    signals = _installed()
    try:
        return signals[kind]
    except KeyError:
        known = ", ".join(sorted(signals)) or "none"
        raise UnknownNameError(f"unknown signal kind {kind!r}; installed: {known}") from None
