"""Rollbar: error and critical occurrences in the environment over the span, vs before.

Endpoints (docs/contracts.md): `POST /api/1/metrics/occurrences` (occurrence counts over a
span, filtered by environment, grouped by level) and `GET /api/1/items` (active critical
items, for "no new critical item"). Auth: a project access token with `read` scope in
`X-Rollbar-Access-Token`, taken from `[credentials]`, never from the inventory text.

The rate is error+critical occurrences over every occurrence of the environment (all
levels) in the span; the baseline is the same span before the change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rotator.errors import KeyMaterialError
from rotator.signals.base import (
    DEGRADED,
    UNKNOWN,
    Signal,
    SignalContext,
    Span,
    Verdict,
    judge_rate,
)
from rotator.signals.http_source import Unanswered, count, read_json

DEFAULT_BASE_URL = "https://api.rollbar.com"
ERROR_LEVELS = ("error", "critical")


class RollbarSignal(Signal):
    kind = "rollbar"
    required_options = ("credential",)
    optional_options = ("base_url", "max_error_rate", "new_critical", "environment")
    credential_options = ("credential",)

    @classmethod
    def validate_options(cls, options: Any) -> list[str]:
        problems = super().validate_options(options)
        if "new_critical" in options and not isinstance(options["new_critical"], bool):
            problems.append(
                f"new_critical: found {options['new_critical']!r}, expected true or false"
            )
        base = options.get("base_url", DEFAULT_BASE_URL)
        if not isinstance(base, str) or not base.startswith(("http://", "https://")):
            problems.append(f"base_url: found {base!r}, expected an http:// or https:// URL")
        return problems

    def _base(self) -> str:
        return str(self.options.get("base_url", DEFAULT_BASE_URL)).rstrip("/")

    def _rollbar_env(self) -> str:
        """The environment name the app reports to Rollbar (default: the inventory's)."""
        return str(self.options.get("environment", self.environment))

    def verdict(self, ctx: SignalContext, span: Span) -> Verdict:
        try:
            token = ctx.credentials.secret(str(self.options["credential"]))
        except KeyMaterialError as exc:
            return Verdict(self.kind, self.environment, UNKNOWN, str(exc))
        headers = {"X-Rollbar-Access-Token": token.reveal(), "Accept": "application/json"}
        try:
            current = self._counts(ctx, headers, span.start, span.end)
            baseline = self._counts(ctx, headers, span.baseline_start, span.baseline_end)
            new_critical = (
                self._new_critical(ctx, headers, span.start, span.end)
                if self.options.get("new_critical", True)
                else []
            )
        except Unanswered as exc:
            return Verdict(self.kind, self.environment, UNKNOWN, f"Rollbar: {exc}")
        judged = judge_rate(self.kind, self.environment, current, baseline, self.max_error_rate())
        figures = {**judged.figures, "new_critical_items": new_critical}
        if new_critical:
            reason = (
                f"{len(new_critical)} new critical item(s) since the change "
                f"(item counter {', '.join(str(c) for c in new_critical)}); {judged.reason}"
            )
            return Verdict(self.kind, self.environment, DEGRADED, reason, figures)
        return Verdict(self.kind, self.environment, judged.status, judged.reason, figures)

    def _counts(
        self, ctx: SignalContext, headers: dict[str, str], start: datetime, end: datetime
    ) -> tuple[int, int]:
        body = {
            "start_time": int(start.timestamp()),
            "end_time": int(end.timestamp()),
            "filters": [{"field": "environment", "operator": "eq", "value": self._rollbar_env()}],
            "group_by": ["level"],
            "aggregate": "count",
        }
        answer = read_json(
            ctx,
            "POST",
            f"{self._base()}/api/1/metrics/occurrences",
            provider="rollbar",
            operation="occurrence metrics",
            headers=headers,
            body=body,
        )
        if not isinstance(answer, dict) or answer.get("err") not in (0, None):
            raise Unanswered("the metrics answer is an error")
        result = answer.get("result")
        rows = result.get("rows") if isinstance(result, dict) else None
        if not isinstance(rows, list):
            raise Unanswered("the metrics answer has no rows")
        errors = events = 0
        for row in rows:
            if not isinstance(row, dict):
                raise Unanswered("a metrics row is not an object")
            n = count(row.get("count"), "a metrics row's count")
            events += n
            if row.get("level") in ERROR_LEVELS:
                errors += n
        return errors, events

    def _new_critical(
        self, ctx: SignalContext, headers: dict[str, str], start: datetime, end: datetime
    ) -> list[int]:
        answer = read_json(
            ctx,
            "GET",
            f"{self._base()}/api/1/items",
            provider="rollbar",
            operation="list critical items",
            headers=headers,
            params={"environment": self._rollbar_env(), "level": "critical", "status": "active"},
        )
        result = answer.get("result") if isinstance(answer, dict) else None
        items = result.get("items") if isinstance(result, dict) else None
        if not isinstance(items, list):
            raise Unanswered("the items answer has no items")
        found = []
        lo, hi = start.timestamp(), end.timestamp()
        for item in items:
            if not isinstance(item, dict):
                continue
            first = item.get("first_occurrence_timestamp")
            if isinstance(first, int | float) and lo <= first <= hi:
                found.append(int(item.get("counter") or item.get("id") or 0))
        return sorted(found)
