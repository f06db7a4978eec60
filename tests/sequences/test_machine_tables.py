"""DESIGN.md §3, line by line, against the machine's rows, events and command table.

The expected lines are transcribed from DESIGN.md §3 (quoted in comments) so a change to
either the design or the machine shows up here as a difference, not as a silent drift.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from rotator import machine as m
from rotator.errors import RefusedError

LONDON = ZoneInfo("Europe/London")

# | month | step | gate |  (DESIGN §3, quarterly)
QUARTERLY_LINES = [
    # "1 | generate | first day of month 1 ... the previous cycle has revoked its old credential"
    (m.PLANNED, "generate", m.GENERATED, ("month_1", "previous_revoked", "unit_free")),
    # "1 | stage | generated"
    (m.GENERATED, "stage", m.STAGED, ("month_1",)),
    # "2 | validate | first day of month 2, and staged for at least the configured soak"
    # (issue 15: and every staging signal answered; silence waits, it never passes)
    (m.STAGED, "validate", m.VALIDATED, ("month_2", "soaked", "signals_answered")),
    # "3 | promote | first day of month 3; inside the window; validated; approval recorded"
    (
        m.VALIDATED,
        "promote",
        m.PROMOTED,
        ("month_3", "approved", "in_window", "signals_answered"),
    ),
    # "3 | monitor | promoted" (24 h of production health checks and signals)
    (m.PROMOTED, "monitor", m.MONITORED, ("signals_answered", "monitored")),
    # "4 | revoke | first day of month 4 and at least 24 h since promote, no rollback"
    (m.MONITORED, "revoke", m.REVOKED, ("month_4", "revoke_delay")),
    # "4 | review | revoked" (a person's security review completes the cycle)
    (m.REVOKED, "review", m.COMPLETED, ()),
]
# | step | what happens |  (DESIGN §3, emergency): assess is the row's creation.
EMERGENCY_LINES = [
    (m.ASSESSED, "generate", m.GENERATED, ()),
    (m.GENERATED, "stage", m.STAGED, ()),
    (m.STAGED, "promote", m.PROMOTED, ()),
    # issue 15: the emergency's short monitoring window (none by default) before revoking
    (m.PROMOTED, "revoke", m.REVOKED, ("signals_answered", "monitored")),
    (m.REVOKED, "notify", m.COMPLETED, ()),
]


def _row(kind: str, state: str) -> m.Row:
    row = m.row_for(kind, state)
    assert row is not None, (kind, state)
    return row


@pytest.mark.parametrize(("state", "step", "done", "gates"), QUARTERLY_LINES)
def test_quarterly_rows_are_design_section_3(
    state: str, step: str, done: str, gates: tuple[str, ...]
) -> None:
    row = _row(m.QUARTERLY, state)
    assert (row.state, row.step, row.done) == (state, step, done)
    assert tuple(g.__name__ for g in row.gates) == gates
    assert m.next_state(m.QUARTERLY, state, "done") == done


@pytest.mark.parametrize(("state", "step", "done", "gates"), EMERGENCY_LINES)
def test_emergency_rows_are_design_section_3(
    state: str, step: str, done: str, gates: tuple[str, ...]
) -> None:
    row = _row(m.EMERGENCY, state)
    assert (row.state, row.step, row.done) == (state, step, done)
    assert tuple(g.__name__ for g in row.gates) == gates
    assert m.next_state(m.EMERGENCY, state, "done") == done


def test_the_quarterly_review_is_a_person_and_generate_waits_for_one() -> None:
    assert _row(m.QUARTERLY, m.REVOKED).human
    for kind, state in ((m.QUARTERLY, m.PLANNED), (m.EMERGENCY, m.ASSESSED)):
        assert m.next_state(kind, state, "await-person") == m.AWAITING_SUPPLY
        assert m.next_state(kind, m.AWAITING_SUPPLY, "answered") == m.GENERATED
    assert m.next_state(m.QUARTERLY, m.MONITORED, "await-person") == m.AWAITING_REVOKE
    assert m.next_state(m.QUARTERLY, m.AWAITING_REVOKE, "answered") == m.REVOKED


def test_rollback_is_a_sequence_of_rows() -> None:
    # "rollback (before revoke: every environment ... back to the previous one, ... and only
    # then the new credential revoked)"; "abort (before promote: staging back, pending revoked)"
    for kind in (m.QUARTERLY, m.EMERGENCY):
        for state in (m.PROMOTED, m.MONITORED):
            assert m.next_state(kind, state, "health-failed") == m.ROLLING_BACK
            assert m.next_state(kind, state, "rollback") == m.ROLLING_BACK
        for state in m.BEFORE_PROMOTE - {m.PLANNED}:
            assert m.next_state(kind, state, "abort") == m.ABORTING
        assert _row(kind, m.ROLLING_BACK).step == "rollback"
        assert m.next_state(kind, m.ABORTING, "done") == m.ABORTED
    assert m.next_state(m.QUARTERLY, m.ROLLING_BACK, "done") == m.ROLLED_BACK
    assert m.next_state(m.QUARTERLY, m.ROLLING_BACK, "await-person") == m.AWAITING_DISCARD
    assert m.next_state(m.QUARTERLY, m.AWAITING_DISCARD, "answered") == m.ROLLED_BACK
    # §4.8: "An emergency that had to roll back ends as needing a person".
    assert m.next_state(m.EMERGENCY, m.ROLLING_BACK, "done") == m.FAILED
    assert m.resume_point(m.EMERGENCY, m.ROLLING_BACK) == m.GENERATED
    assert m.FAILED in m.PERSON_STATES


def test_terminal_states_take_no_event() -> None:
    events = ("done", "await-person", "answered", *m.EVENTS)
    for kind in (m.QUARTERLY, m.EMERGENCY):
        for state in m.TERMINAL:
            for event in events:
                with pytest.raises(m.IllegalTransition):
                    m.next_state(kind, state, event)


def test_resume_goes_back_only_from_failed() -> None:
    assert m.next_state(m.QUARTERLY, m.FAILED, "resume", resume_to=m.STAGED) == m.STAGED
    with pytest.raises(m.IllegalTransition):
        m.next_state(m.QUARTERLY, m.STAGED, "resume", resume_to=m.STAGED)
    with pytest.raises(m.IllegalTransition):
        m.next_state(m.QUARTERLY, m.FAILED, "resume", resume_to=m.COMPLETED)


def _facts(kind: str, state: str, **more: object) -> m.Facts:
    now = datetime(2027, 3, 2, 2, 30, tzinfo=LONDON)
    gates = tuple(datetime(2027, month, 1, tzinfo=LONDON) for month in (1, 2, 3, 4))
    return m.Facts(kind=kind, state=state, now=now, month_gates=gates, **more)  # type: ignore[arg-type]


@pytest.mark.parametrize("command", sorted(m.COMMANDS))
def test_each_command_is_allowed_exactly_in_its_states(command: str) -> None:
    kinds, allowed, _ = m.COMMANDS[command]
    every = {*m._LIVE_STATES, m.FAILED, *m.TERMINAL}
    for kind in (m.QUARTERLY, m.EMERGENCY):
        for state in every:
            facts = _facts(kind, state)
            if kind in kinds and state in allowed:
                m.check_command(command, facts)
            else:
                with pytest.raises(RefusedError):
                    m.check_command(command, facts)


def test_approving_twice_is_refused() -> None:
    with pytest.raises(RefusedError, match="already approved"):
        m.check_command("approve", _facts(m.QUARTERLY, m.VALIDATED, approved=True))


def test_awaiting_approval_is_a_persons_turn() -> None:
    decision = m.next_decision(
        _facts(m.QUARTERLY, m.VALIDATED, approval_required=True, staged_at=None)
    )
    assert isinstance(decision, m.AwaitPerson)
    assert "approve" in decision.command


def test_another_rotation_in_flight_holds_generate() -> None:
    decision = m.next_decision(_facts(m.QUARTERLY, m.PLANNED, other_in_flight="abc"))
    assert isinstance(decision, m.Wait) and "abc" in decision.reason
    assert m.in_flight(m.STAGED, True) and not m.in_flight(m.PLANNED, True)
    assert not m.in_flight(m.REVOKED, True) and not m.in_flight(m.COMPLETED, False)


def test_no_state_is_assigned_outside_the_one_function() -> None:
    """DESIGN §4.13: the engine performs and records; only the machine sets a state.

    Rotations (`apply_transition`), credential versions and the tool's own credentials
    (`move_version`), own-credential rotations (`move_own_rotation`): any other `.state =`
    outside the sandbox (which emulates the providers' own objects) is a bypass.
    """
    root = Path(__file__).resolve().parents[2] / "rotator"
    assignment = re.compile(r"\.state\s*=[^=]")
    offenders = []
    for path in sorted(root.rglob("*.py")):
        if "sandbox" in path.parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if assignment.search(line):
                offenders.append(f"{path.relative_to(root.parent)}:{number}: {line.strip()}")
    allowed = {"rotation.state = after", "version.state = to", "own.state = to"}
    assert sorted(o.split(": ", 1)[1] for o in offenders) == sorted(allowed), offenders
    assert all(o.startswith("rotator/machine.py:") for o in offenders), offenders


# ---------------------------------------------------------------------------- issue 15
def test_a_degraded_staging_signal_stops_before_promotion() -> None:
    for state in (m.STAGED, m.VALIDATED):
        assert m.next_state(m.QUARTERLY, state, "degraded") == m.FAILED
    for state in (m.PROMOTED, m.GENERATED, m.MONITORED):
        with pytest.raises(m.IllegalTransition):
            m.next_state(m.QUARTERLY, state, "degraded")
    with pytest.raises(m.IllegalTransition):
        m.next_state(m.EMERGENCY, m.STAGED, "degraded")
    # Production degraded after promotion is the rollback event.
    assert m.next_state(m.QUARTERLY, m.PROMOTED, "health-failed") == m.ROLLING_BACK


def test_a_silent_signal_waits_for_the_grace_then_asks_a_person() -> None:
    now = datetime(2027, 3, 2, 9, 0, tzinfo=LONDON)
    since = datetime(2027, 3, 2, 5, 0, tzinfo=LONDON)
    base = m.Facts(
        kind=m.QUARTERLY,
        state=m.PROMOTED,
        now=now,
        promoted_at=datetime(2027, 3, 1, 2, 30, tzinfo=LONDON),
        signals_unknown_since=since,
    )
    waiting = m.next_decision(base)
    assert isinstance(waiting, m.Wait) and waiting.until == since + base.signal_grace
    assert "has not answered" in waiting.reason
    late = m.next_decision(replace(base, now=since + base.signal_grace))
    assert isinstance(late, m.AwaitPerson) and "longer than the grace" in late.action
    # Answered again: the monitoring step runs (24 h have passed).
    assert m.next_decision(replace(base, signals_unknown_since=None)) == m.Do("monitor")
    # Before promotion too: validate and promote wait on silence.
    staged = replace(base, state=m.STAGED, staged_at=datetime(2027, 1, 1, tzinfo=LONDON))
    assert isinstance(m.next_decision(staged), m.Wait)


def test_an_emergency_with_a_window_monitors_before_revoking() -> None:
    promoted = datetime(2027, 1, 10, 11, 0, tzinfo=LONDON)
    f = m.Facts(
        kind=m.EMERGENCY,
        state=m.PROMOTED,
        now=promoted + timedelta(minutes=5),
        promoted_at=promoted,
        monitoring=timedelta(minutes=15),
    )
    decision = m.next_decision(f)
    assert isinstance(decision, m.Wait) and decision.until == promoted + timedelta(minutes=15)
    assert m.next_decision(replace(f, now=promoted + timedelta(minutes=15))) == m.Do("revoke")
    # No window (the default): revocation at once, as before.
    assert m.next_decision(replace(f, monitoring=timedelta(0))) == m.Do("revoke")


def test_aborting_a_planned_cycle_ends_it_without_entering_flight() -> None:
    """A planned cycle has nothing to undo; through ABORTING it would sit in flight beside
    the unit's emergency, which `uq_rotation_in_flight` refuses (found by the property test)."""
    assert m.next_state(m.QUARTERLY, m.PLANNED, "abort") == m.ABORTED
    assert not m.in_flight(m.ABORTED, True)
    for state in m.BEFORE_PROMOTE - {m.PLANNED}:
        assert m.next_state(m.QUARTERLY, state, "abort") == m.ABORTING
