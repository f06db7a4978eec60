"""Logflare: error-level events of the environment over the span, vs before the change.

Endpoint (docs/contracts.md): `GET /api/endpoints/query/{endpoint}` runs a saved query
(a Logflare Endpoint) whose `@environment`, `@start` and `@end` parameters come from the
query string; it must answer one row `{"errors": N, "events": M}` (the SQL to save is in
docs/inventory.md). Auth: an access token in `X-API-KEY`, from `[credentials]`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rotator.errors import KeyMaterialError
from rotator.signals.base import UNKNOWN, Signal, SignalContext, Span, Verdict, judge_rate
from rotator.signals.http_source import Unanswered, count, read_json

DEFAULT_BASE_URL = "https://api.logflare.app"
DEFAULT_ENDPOINT = "rotator.error-counts"


class LogflareSignal(Signal):
    kind = "logflare"
    required_options = ("credential",)
    optional_options = ("base_url", "endpoint", "max_error_rate", "environment")
    credential_options = ("credential",)

    @classmethod
    def validate_options(cls, options: Any) -> list[str]:
        problems = super().validate_options(options)
        base = options.get("base_url", DEFAULT_BASE_URL)
        if not isinstance(base, str) or not base.startswith(("http://", "https://")):
            problems.append(f"base_url: found {base!r}, expected an http:// or https:// URL")
        endpoint = options.get("endpoint", DEFAULT_ENDPOINT)
        if not isinstance(endpoint, str) or not endpoint or "/" in endpoint:
            problems.append(
                f"endpoint: found {endpoint!r}, expected a Logflare endpoint name or UUID"
            )
        return problems

    def verdict(self, ctx: SignalContext, span: Span) -> Verdict:
        try:
            key = ctx.credentials.secret(str(self.options["credential"]))
        except KeyMaterialError as exc:
            return Verdict(self.kind, self.environment, UNKNOWN, str(exc))
        headers = {"X-API-KEY": key.reveal(), "Accept": "application/json"}
        try:
            current = self._counts(ctx, headers, span.start, span.end)
            baseline = self._counts(ctx, headers, span.baseline_start, span.baseline_end)
        except Unanswered as exc:
            return Verdict(self.kind, self.environment, UNKNOWN, f"Logflare: {exc}")
        return judge_rate(
            self.kind,
            self.environment,
            current,
            baseline,
            self.max_error_rate(),
            "error-level events",
        )

    def _counts(
        self, ctx: SignalContext, headers: dict[str, str], start: datetime, end: datetime
    ) -> tuple[int, int]:
        base = str(self.options.get("base_url", DEFAULT_BASE_URL)).rstrip("/")
        endpoint = str(self.options.get("endpoint", DEFAULT_ENDPOINT))
        answer = read_json(
            ctx,
            "GET",
            f"{base}/api/endpoints/query/{endpoint}",
            provider="logflare",
            operation="error counts",
            headers=headers,
            params={
                "environment": str(self.options.get("environment", self.environment)),
                "start": start.isoformat(),
                "end": end.isoformat(),
            },
        )
        rows = answer.get("result") if isinstance(answer, dict) else None
        if not isinstance(rows, list) or len(rows) != 1 or not isinstance(rows[0], dict):
            raise Unanswered("the endpoint did not answer one row of errors and events")
        return (
            count(rows[0].get("errors"), "errors"),
            count(rows[0].get("events"), "events"),
        )
