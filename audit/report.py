"""Render the trail as one self-contained HTML page for auditors: no JavaScript, printable.

Events are grouped by secret and then by rotation id, each step with its date and actor;
approvals and reviews, emergencies (with reasons), rollbacks and refused commands are
listed again on their own, and the verification result sits at the top. Event types are
matched by words they contain (`approv`, `review`, `emergency`, `rollback`, `refus`), so
the engine may name them freely; `details.step`, `details.outcome` and `details.reason`
are shown when present. Every value is HTML-escaped.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from html import escape
from typing import Any, Protocol

from audit.entry import decode_entry
from audit.verify import VerifyResult
from rotator.clock import now

__all__ = ["render_report"]

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#111}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #999}h3{font-size:1.05em}
table{border-collapse:collapse;width:100%;margin:.5em 0 1em}
th,td{border:1px solid #bbb;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#eee}.ok{background:#e6f4e6;border:2px solid #2a7a2a;padding:.6em}
.bad{background:#fbe9e9;border:2px solid #a11;padding:.6em}
code,td.t{font-family:ui-monospace,monospace;font-size:.9em;white-space:nowrap}
@media print{body{margin:0}h2{break-after:avoid}table{break-inside:auto}tr{break-inside:avoid}}
"""
_SECTIONS = (
    ("Approvals and reviews", ("approv", "review")),
    ("Emergencies", ("emergency",)),
    ("Rollbacks", ("rollback",)),
    ("Refused commands", ("refus",)),
)
_MAX_PROBLEMS_SHOWN = 200


class StoredEvent(Protocol):
    """Anything with the stored entry bytes, such as `AuditEvent`."""

    entry: bytes


def _as_dict(event: StoredEvent | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(event, Mapping):
        return dict(event)
    stored = event.entry
    try:
        if isinstance(stored, memoryview | bytearray):
            stored = bytes(stored)
        if not isinstance(stored, bytes | str):
            raise TypeError
        return decode_entry(stored if isinstance(stored, bytes) else stored.encode())
    except (ValueError, TypeError):
        # A row a database writer broke: shown as unreadable, where it sits.
        seq = getattr(event, "seq", None)
        return {"seq": seq, "type": "(unreadable entry)", "details": {}}


def _cell(value: object) -> str:
    return escape("" if value is None else str(value))


def _details_text(details: object) -> str:
    if not isinstance(details, Mapping) or not details:
        return ""
    parts = []
    for key, value in details.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        parts.append(f"{key}={shown}")
    text = ", ".join(parts)
    return text if len(text) <= 300 else text[:297] + "..."


def _event_rows(events: list[dict[str, Any]], *, with_secret: bool = False) -> str:
    head = ["Time (UTC)", "Event", "Step", "Actor", "Environment", "Outcome / reason", "Details"]
    if with_secret:
        head.insert(1, "Secret")
    rows = ["<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for e in events:
        raw = e.get("details")
        details: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        cells = [
            f'<td class="t">{_cell(e.get("time"))}</td>',
            f"<td>{_cell(e.get('type'))}</td>",
            f"<td>{_cell(details.get('step'))}</td>",
            f"<td>{_cell(e.get('actor'))}</td>",
            f"<td>{_cell(e.get('environment'))}</td>",
            f"<td>{_cell(details.get('outcome') or details.get('reason'))}</td>",
            f"<td>{_cell(_details_text(details))}</td>",
        ]
        if with_secret:
            cells.insert(1, f"<td>{_cell(e.get('secret'))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return "<table>" + "".join(rows) + "</table>"


def _verification_html(result: VerifyResult | None) -> str:
    if result is None:
        return '<div class="bad"><strong>The trail was not verified for this report.</strong></div>'
    verdict = "VALID" if result.ok else "INVALID"
    parts = [
        f'<div class="{"ok" if result.ok else "bad"}"><strong>Verification: {verdict}</strong>'
        f" &mdash; {_cell(result.summary())}"
    ]
    if result.problems:
        shown = result.problems[:_MAX_PROBLEMS_SHOWN]
        parts.append("<ul>" + "".join(f"<li>{_cell(p.line())}</li>" for p in shown) + "</ul>")
        hidden = len(result.problems) - len(shown) + result.problems_omitted
        if hidden:
            parts.append(f"<p>and {hidden} more problem(s).</p>")
    if result.warnings:
        parts.append(
            "<ul>" + "".join(f"<li>warning: {_cell(w)}</li>" for w in result.warnings) + "</ul>"
        )
    parts.append("</div>")
    return "".join(parts)


def render_report(
    events: Iterable[StoredEvent | Mapping[str, Any]],
    verification: VerifyResult | None,
    *,
    inventory_names: Iterable[str] = (),
    title: str = "Secret rotation audit report",
    generated_at: datetime | None = None,
) -> str:
    """Return the report page for `events` (stored events or decoded entries)."""
    by_secret: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    sections: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in _SECTIONS}
    count = 0
    for raw in events:
        e = _as_dict(raw)
        count += 1
        secret = e.get("secret") or "(no secret)"
        by_secret[str(secret)][str(e.get("rotation_id") or "")].append(e)
        kind = str(e.get("type") or "").lower()
        for name, words in _SECTIONS:
            if any(w in kind for w in words):
                sections[name].append(e)
    moment = (generated_at or now()).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_cell(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_cell(title)}</h1>",
        f"<p>Generated {_cell(moment)} from {count} audit event(s).</p>",
        _verification_html(verification),
    ]
    for name, _ in _SECTIONS:
        out.append(f"<h2>{_cell(name)}</h2>")
        listed = sections[name]
        out.append(_event_rows(listed, with_secret=True) if listed else "<p>None recorded.</p>")
    out.append("<h2>Secrets</h2>")
    names = list(dict.fromkeys([*inventory_names, *sorted(by_secret)]))
    for secret in names:
        out.append(f"<h3>{_cell(secret)}</h3>")
        rotations = by_secret.get(secret)
        if not rotations:
            out.append("<p>No events recorded.</p>")
            continue
        for rotation_id, steps in rotations.items():
            label = f"Rotation {rotation_id}" if rotation_id else "Events outside a rotation"
            span = f"{steps[0].get('time')} to {steps[-1].get('time')}"
            out.append(f"<p><strong>{_cell(label)}</strong> ({_cell(span)})</p>")
            out.append(_event_rows(steps))
    out.append("</body></html>")
    return "\n".join(out) + "\n"
