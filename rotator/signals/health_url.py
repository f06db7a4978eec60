"""The health URL as a signal: today's check (GET, expected status), behind the interface.

A health URL has no history: it judges the environment now, whatever the span.
"""

from __future__ import annotations

from rotator.signals.base import DEGRADED, OK, Signal, SignalContext, Span, Verdict


class HealthUrlSignal(Signal):
    kind = "health-url"

    def verdict(self, ctx: SignalContext, span: Span) -> Verdict:
        from rotator.health import HealthCheck

        check = ctx.health
        if not isinstance(check, HealthCheck):
            return Verdict(self.kind, self.environment, OK, "no health URL configured")
        result = check.check(ctx.http, sleep=ctx.sleep)
        figures = {"status": result.status, "expected_status": check.expected_status}
        if result.ok:
            return Verdict(self.kind, self.environment, OK, result.detail, figures)
        return Verdict(self.kind, self.environment, DEGRADED, result.detail, figures)
