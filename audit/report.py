"""Render the trail as one self-contained HTML page for auditors: no JavaScript, printable.

The verdict of the verification comes first. Then the evidence an auditor signs off
from: per secret, a matrix of its quarterly cycles (each step with its time, who approved,
whether revocation was verified at the provider, who reviewed); emergencies with their
outcome and time to contain (started to old credential verified refused); rollbacks,
failed steps, refused commands and the waits for a person with how long they lasted.
Every row links to its raw entry by `seq`, and the raw entries close the page, grouped
by secret and rotation. Event types are matched by the words they contain, so the engine
may name them freely. Every value is HTML-escaped; print CSS lays it out on A4 landscape.
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
body{font:13px/1.4 system-ui,sans-serif;margin:1.5em;color:#111;max-width:100%}
h1{font-size:1.5em}h2{margin-top:1.6em;border-bottom:1px solid #999}h3{font-size:1.05em}
table{border-collapse:collapse;width:100%;margin:.5em 0 1em;table-layout:auto}
th,td{border:1px solid #bbb;padding:.2em .4em;text-align:left;vertical-align:top;
overflow-wrap:anywhere;word-break:break-word}
th{background:#eee}.ok{background:#e6f4e6;border:2px solid #2a7a2a;padding:.6em}
.bad{background:#fbe9e9;border:2px solid #a11;padding:.6em}
.verdict{font-size:1.3em}.muted{color:#666}.warn{color:#a11}
.matrix td,.matrix th{overflow-wrap:normal;word-break:normal}
.matrix td:first-child{white-space:nowrap}
code,td.t{font-family:ui-monospace,monospace;font-size:.9em}
a{color:#1a4f8a}
@page{size:A4 landscape;margin:10mm}
@media print{body{margin:0;font-size:9pt}h2{break-after:avoid}table{break-inside:auto}
tr{break-inside:avoid}a{color:inherit;text-decoration:none}}
"""
_SECTIONS = (
    ("Approvals and reviews", ("approv", "review")),
    ("Rollbacks", ("rollback", "rolled_back")),
    ("Failed steps", ("step.failed",)),
    ("Refused commands", ("refus",)),
)
_CYCLE_STEPS = (
    "plan",
    "generate",
    "stage",
    "validate",
    "approve",
    "promote",
    "monitor",
    "revoke",
    "review",
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


# Control characters are harmless to a browser but not to whoever copies a cell into a
# terminal: shown escaped, as on the command line.
_CONTROLS = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}
_CONTROLS |= {c: f"\\u{c:04x}" for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]}


def _cell(value: object) -> str:
    return escape(("" if value is None else str(value)).translate(_CONTROLS))


def _details_text(details: object) -> str:
    if not isinstance(details, Mapping) or not details:
        return ""
    parts = []
    for key, value in details.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        parts.append(f"{key}={shown}")
    text = ", ".join(parts)
    return text if len(text) <= 300 else text[:297] + "..."


def _seq_link(e: Mapping[str, Any]) -> str:
    seq = e.get("seq")
    if not isinstance(seq, int):
        return _cell(seq)
    return f'<a href="#e{seq}">{seq}</a>'


def _details_of(e: Mapping[str, Any]) -> Mapping[str, Any]:
    raw = e.get("details")
    return raw if isinstance(raw, Mapping) else {}


def _event_rows(
    events: list[dict[str, Any]], *, with_secret: bool = False, anchors: bool = False
) -> str:
    head = ["Seq", "Time (UTC)", "Event", "Step", "Actor", "Environment", "Outcome / reason"]
    head.append("Details")
    if with_secret:
        head.insert(2, "Secret")
    rows = ["<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for e in events:
        details = _details_of(e)
        seq = e.get("seq")
        anchor = f' id="e{seq}"' if anchors and isinstance(seq, int) else ""
        cells = [
            f"<td{anchor}>{_seq_link(e)}</td>",
            f'<td class="t">{_cell(e.get("time"))}</td>',
            f"<td>{_cell(e.get('type'))}</td>",
            f"<td>{_cell(details.get('step'))}</td>",
            f"<td>{_cell(e.get('actor'))}</td>",
            f"<td>{_cell(e.get('environment'))}</td>",
            f"<td>{_cell(details.get('outcome') or details.get('reason'))}</td>",
            f"<td>{_cell(_details_text(details))}</td>",
        ]
        if with_secret:
            cells.insert(2, f"<td>{_cell(e.get('secret'))}</td>")
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


def _parse_time(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _duration(start: object, end: object) -> str:
    a, b = _parse_time(start), _parse_time(end)
    if a is None or b is None:
        return "-"
    seconds = int((b - a).total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {seconds} s"


def _stamp(e: Mapping[str, Any] | None, *, who: bool = False) -> str:
    if e is None:
        return '<span class="muted">-</span>'
    when = str(e.get("time") or "")[:16].replace("T", " ")
    actor = f"<br>{_cell(e.get('actor'))}" if who else ""
    return f"{_cell(when)} ({_seq_link(e)}){actor}"


def _step_of(e: Mapping[str, Any]) -> str:
    return str(_details_of(e).get("step") or "")


def _refused_check(e: Mapping[str, Any]) -> bool:
    details = _details_of(e)
    status = details.get("http_status")
    return (
        details.get("operation") == "verify_revoked"
        and isinstance(status, int)
        and 400 <= status < 500
    )


def _window_verdict(promoted: Mapping[str, Any]) -> str:
    """Say whether production moved inside the maintenance window the event records."""
    details = _details_of(promoted)
    inside, window = details.get("in_window"), details.get("window")
    if inside is True:
        return f"inside the window ({_cell(window)})"
    if inside is False:
        return f'<strong class="warn">OUTSIDE the window</strong> ({_cell(window)})'
    if window:
        return _cell(window)
    return '<span class="muted">window not recorded</span>'


def _cycle_matrix(rotations: Mapping[str, list[dict[str, Any]]]) -> str:
    """Return one row per quarterly cycle: each step's time, approver, revocation, reviewer."""
    head = ["Cycle", "Environment", *(s.capitalize() for s in _CYCLE_STEPS), "Outcome"]
    rows = ["<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    shown = 0
    for rotation_id, events in rotations.items():
        planned = next((e for e in events if e.get("type") == "cycle.planned"), None)
        if planned is None:
            continue
        shown += 1
        done: dict[str, dict[str, Any]] = {"plan": planned}
        revoke_verified = False
        promoted: dict[str, Any] | None = None
        for e in events:
            kind, step = str(e.get("type") or ""), _step_of(e)
            if kind == "credential.promoted":
                promoted = e
            if kind == "step.done" and step in _CYCLE_STEPS:
                done.setdefault(step, e)
            elif kind == "step.confirmed" and step == "revoke":
                done["revoke"] = e
                revoke_verified = True
            elif kind == "call" and _refused_check(e):
                # The old credential, tried at the provider after revoking, was refused.
                revoke_verified = True
            elif "approv" in kind:
                done.setdefault("approve", e)
            elif "review" in kind:
                done.setdefault("review", e)
        if "revoke" in done and not revoke_verified:
            revoke_verified = bool(_details_of(done["revoke"]).get("verified"))
        cells = [
            f"<td>{_cell(_details_of(planned).get('cycle') or rotation_id)}</td>",
            f"<td>{_cell(planned.get('environment'))}</td>",
        ]
        for step in _CYCLE_STEPS:
            text = _stamp(done.get(step), who=step in ("approve", "review"))
            if step == "revoke" and step in done:
                text += "<br>verified refused" if revoke_verified else "<br>not verified"
            if step == "promote" and promoted is not None:
                text += "<br>" + _window_verdict(promoted)
            cells.append(f"<td>{text}</td>")
        last = events[-1]
        outcome = _details_of(last).get("state_to") or last.get("type")
        cells.append(f"<td>{_cell(outcome)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    if not shown:
        return ""
    return '<table class="matrix">' + "".join(rows) + "</table>"


def _emergencies(by_rotation: Mapping[str, list[dict[str, Any]]]) -> str:
    head = ["Started", "Secret", "By", "Reason", "Contained", "Time to contain", "Outcome"]
    rows = ["<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for events in by_rotation.values():
        started = next((e for e in events if "emergency" in str(e.get("type") or "")), None)
        if started is None:
            continue
        contained = next(
            (
                e
                for e in events
                if _step_of(e) == "revoke" and e.get("type") in ("step.done", "step.confirmed")
            ),
            None,
        )
        rolled = any("rolled_back" in str(e.get("type")) for e in events)
        last = events[-1]
        outcome = (
            "rolled back: production may serve the compromised credential"
            if rolled
            else str(_details_of(last).get("state_to") or last.get("type"))
        )
        rows.append(
            "<tr>"
            f"<td>{_stamp(started)}</td><td>{_cell(started.get('secret'))}</td>"
            f"<td>{_cell(started.get('actor'))}</td>"
            f"<td>{_cell(_details_of(started).get('reason'))}</td>"
            f"<td>{_stamp(contained)}</td>"
            f"<td>{_cell(_duration(started.get('time'), contained and contained.get('time')))}</td>"
            f"<td>{_cell(outcome)}</td></tr>"
        )
    if len(rows) == 1:
        return "<p>None recorded.</p>"
    return "<table>" + "".join(rows) + "</table>"


def _person_waits(by_rotation: Mapping[str, list[dict[str, Any]]]) -> str:
    head = ["Waiting since", "Secret", "Step", "Instruction", "Ended", "Waited"]
    rows = ["<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for events in by_rotation.values():
        for i, e in enumerate(events):
            if "awaiting_person" not in str(e.get("type") or ""):
                continue
            step = _step_of(e)
            ended = next(
                (
                    later
                    for later in events[i + 1 :]
                    if later.get("type") in ("step.done", "credential.supplied", "step.confirmed")
                    and _step_of(later) in ("", step)
                ),
                None,
            )
            instruction = str(_details_of(e).get("instruction") or "")
            rows.append(
                "<tr>"
                f"<td>{_stamp(e)}</td><td>{_cell(e.get('secret'))}</td><td>{_cell(step)}</td>"
                f"<td>{_cell(instruction[:200])}</td><td>{_stamp(ended)}</td>"
                f"<td>{_cell(_duration(e.get('time'), ended and ended.get('time')))}</td></tr>"
            )
    if len(rows) == 1:
        return "<p>None recorded.</p>"
    return "<table>" + "".join(rows) + "</table>"


def render_report(
    events: Iterable[StoredEvent | Mapping[str, Any]],
    verification: VerifyResult | None,
    *,
    inventory_names: Iterable[str] = (),
    title: str = "Secret rotation audit report",
    generated_at: datetime | None = None,
    period: tuple[datetime | None, datetime | None] = (None, None),
) -> str:
    """Return the report page for `events` (stored events or decoded entries)."""
    by_secret: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    by_rotation: dict[str, list[dict[str, Any]]] = defaultdict(list)
    sections: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in _SECTIONS}
    count = 0
    for raw in events:
        e = _as_dict(raw)
        count += 1
        secret = e.get("secret") or "(no secret)"
        rotation = str(e.get("rotation_id") or "")
        by_secret[str(secret)][rotation].append(e)
        if rotation:
            by_rotation[rotation].append(e)
        kind = str(e.get("type") or "").lower()
        for name, words in _SECTIONS:
            if any(w in kind for w in words):
                sections[name].append(e)
    moment = (generated_at or now()).strftime("%Y-%m-%d %H:%M UTC")
    start, end = period
    span = (
        f"from {start.isoformat() if start else 'the first entry'} "
        f"to {end.isoformat() + ' (exclusive)' if end else 'the last entry'}"
    )
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width">',
        f"<title>{_cell(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_cell(title)}</h1>",
        _verification_html(verification),
        f"<p>Period: {_cell(span)}. Generated {_cell(moment)} from {count} audit event(s); "
        "the verification covers the whole trail. Numbers in brackets link to the raw entry "
        "(its <code>seq</code>).</p>",
    ]
    out.append('<h2 id="cycles">Quarterly cycles</h2>')
    names = list(dict.fromkeys([*inventory_names, *sorted(by_secret)]))
    any_cycle = False
    for secret in names:
        matrix = _cycle_matrix(by_secret.get(secret, {}))
        if matrix:
            any_cycle = True
            out.append(f'<h3 id="cycles-{_cell(secret)}">{_cell(secret)}</h3>{matrix}')
    if not any_cycle:
        out.append("<p>None recorded.</p>")
    out.append('<h2 id="emergencies">Emergencies</h2>')
    out.append(_emergencies(by_rotation))
    for name, _ in _SECTIONS:
        out.append(f"<h2>{_cell(name)}</h2>")
        listed = sections[name]
        out.append(_event_rows(listed, with_secret=True) if listed else "<p>None recorded.</p>")
    out.append('<h2 id="waits">Waits for a person</h2>')
    out.append(_person_waits(by_rotation))
    out.append("<h2>Raw entries by secret</h2>")
    for secret in names:
        out.append(f"<h3>{_cell(secret)}</h3>")
        rotations = by_secret.get(secret)
        if not rotations:
            out.append("<p>No events recorded.</p>")
            continue
        for rotation_id, steps in rotations.items():
            label = f"Rotation {rotation_id}" if rotation_id else "Events outside a rotation"
            kind = next(
                (
                    str(_details_of(e).get("cycle") or "")
                    for e in steps
                    if e.get("type") == "cycle.planned"
                ),
                "",
            )
            if any("emergency" in str(e.get("type")) for e in steps):
                kind = "emergency"
            extra = f", {kind}" if kind else ""
            last = steps[-1]
            outcome = _details_of(last).get("state_to") or last.get("type")
            when = f"{steps[0].get('time')} to {last.get('time')}"
            out.append(
                f"<p><strong>{_cell(label)}</strong>{_cell(extra)} ({_cell(when)}; "
                f"last: {_cell(outcome)})</p>"
            )
            out.append(_event_rows(steps, anchors=True))
    out.append("</body></html>")
    return "\n".join(out) + "\n"
