"""Monitoring signals: health URL, Rollbar and Logflare verdicts behind one interface."""

from rotator.signals.base import (
    DEGRADED,
    OK,
    UNKNOWN,
    Signal,
    SignalContext,
    Span,
    Verdict,
    get_signal,
)

__all__ = ["DEGRADED", "OK", "UNKNOWN", "Signal", "SignalContext", "Span", "Verdict", "get_signal"]
