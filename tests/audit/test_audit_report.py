"""The auditors' HTML page: grouped, escaped, self-contained, with the verdict on top."""

from __future__ import annotations

from typing import Any

from audit.report import render_report
from audit.verify import Problem, VerifyResult


def event(seq: int, type_: str, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "seq": seq,
        "time": f"2026-01-{seq:02d}T10:00:00.000000Z",
        "actor": "cron",
        "secret": "BANDOFBAKERS_RESEND_API_KEY",
        "environment": "staging",
        "rotation_id": "rot-1",
        "type": type_,
        "details": {},
    }
    base.update(kw)
    return base


EVENTS = [
    event(1, "rotation.step", details={"step": "generate", "outcome": "ok"}),
    event(2, "approval", actor="<script>alert(1)</script>", details={"note": "a & b"}),
    event(3, "review", actor="carol"),
    event(
        4,
        "emergency",
        rotation_id="rot-2",
        actor="sec-team",
        details={"reason": "key leaked in <b>logs</b>", "scope": ["current"]},
    ),
    event(5, "rollback", rotation_id="rot-2", details={"reason": "health check failed"}),
    event(6, "refused", secret=None, rotation_id=None, details={"reason": "gate closed"}),
]


def test_report_groups_escapes_and_shows_the_verdict() -> None:
    result = VerifyResult(
        entries_total=6, entries_valid=6, checkpoints_total=1, checkpoints_valid=1
    )
    page = render_report(EVENTS, result, inventory_names=["GOOGLE_CLIENT_SECRET"])
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "key leaked in &lt;b&gt;logs&lt;/b&gt;" in page
    assert "a &amp; b" in page
    assert "Verification: VALID" in page
    assert page.index("Verification") < page.index("BANDOFBAKERS_RESEND_API_KEY")
    assert "Rotation rot-1" in page and "Rotation rot-2" in page
    for section in ("Approvals and reviews", "Emergencies", "Rollbacks", "Refused commands"):
        assert section in page
    assert "health check failed" in page
    assert "GOOGLE_CLIENT_SECRET" in page and "No events recorded." in page
    assert "http" not in page.replace("http-equiv", "")  # nothing fetched from elsewhere


def test_report_shows_problems_and_unverified_state() -> None:
    bad = VerifyResult(entries_total=2, entries_valid=1)
    bad.problems.append(Problem("entry", 2, "hash mismatch", "line <3>"))
    page = render_report(EVENTS[:1], bad)
    assert "Verification: INVALID" in page
    assert "entry 2 INVALID: hash mismatch (line &lt;3&gt;)" in page
    assert "was not verified" in render_report([], None)


def _cycle(promoted_details: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        event(1, "cycle.planned", rotation_id="q", details={"cycle": "2026-Q1"}),
        event(2, "step.done", rotation_id="q", details={"step": "promote"}),
        event(3, "credential.promoted", rotation_id="q", details=promoted_details),
    ]


def test_quarter_matrix_judges_whether_production_moved_inside_the_window() -> None:
    window = "Tue, Wed 10:00-16:00 Europe/London"
    inside = render_report(_cycle({"window": window, "in_window": True}), None)
    assert f"inside the window ({window})" in inside
    assert "OUTSIDE" not in inside
    outside = render_report(_cycle({"window": window, "in_window": False}), None)
    assert f"OUTSIDE the window</strong> ({window})" in outside
    # A trail written before the window was recorded says so rather than guessing.
    assert "window not recorded" in render_report(_cycle({}), None)
