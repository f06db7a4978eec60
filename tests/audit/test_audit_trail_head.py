"""The head cached between appends of one transaction, and the entry encoded once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from audit_test_support import sign_and_verify
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, event, text
from sqlmodel import Session

from audit.entry import ZERO_HASH, encode_entry, entry_hash
from audit.trail import _place, append, read_head
from rotator.errors import AuditWriteError

TRICKY_DETAILS: list[dict[str, Any] | None] = [
    None,
    {},
    {"prev": ZERO_HASH, "seq": 1, "rotation_id": None, "time": "x"},
    {"nested": {"prev": ZERO_HASH, "rotation_id": 1, "seq": 1, "time": "2026"}},
    {"note": '","prev":"' + ZERO_HASH + '","rotation_id":', "q": ',"seq":1,"time":"'},
    {"list": [{"prev": ZERO_HASH, "rotation_id": None}, {"seq": 1, "time": ""}]},
    {"unicode": 'café ✓ \u2028 \x00 \\" end'},
]


@pytest.mark.parametrize("details", TRICKY_DETAILS)
@pytest.mark.parametrize("seq", [1, 2, 10, 12345678901])
def test_spliced_entry_is_byte_for_byte_encode_entry(details: Any, seq: int) -> None:
    fields: dict[str, Any] = {
        "time": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        "actor": 'cron ","prev":"',
        "event_type": "step",
        "host": "h",
        "tool_version": "1.0",
        "secret": ',"seq":1,"time":"',
        "environment": None,
        "rotation_id": "r",
        "details": details,
    }
    prev = "ab" * 32
    template = encode_entry(seq=1, prev=ZERO_HASH, **fields)
    assert _place(template, seq, prev) == encode_entry(seq=seq, prev=prev, **fields)


def test_later_appends_of_a_transaction_only_insert(engine: Engine) -> None:
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.split()[0].upper())

    with Session(engine) as session:
        append(session, event_type="plan", actor="cron")
        event.listen(engine, "before_cursor_execute", seen)
        try:
            for _ in range(3):
                append(session, event_type="stage", actor="cron")
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        session.commit()
        assert read_head(session)[0] == 4
    assert statements == ["INSERT"] * 3


def test_a_rolled_back_append_leaves_no_stale_head(
    engine: Engine, signing_key: Ed25519PrivateKey
) -> None:
    with Session(engine) as session:
        append(session, event_type="plan", actor="cron")
        append(session, event_type="stage", actor="cron")
        session.rollback()
        third = append(session, event_type="plan", actor="cron")
        session.commit()
        assert third.seq == 1 and third.entry_hash == entry_hash(ZERO_HASH, third.entry)
        assert read_head(session) == (1, third.entry_hash)
        result = sign_and_verify(session, signing_key)
    assert result.ok and result.entries_total == 1


def test_a_rolled_back_savepoint_leaves_no_stale_head(
    engine: Engine, signing_key: Ed25519PrivateKey
) -> None:
    with Session(engine) as session:
        first = append(session, event_type="plan", actor="cron")
        nested = session.begin_nested()
        append(session, event_type="stage", actor="cron")
        nested.rollback()
        second = append(session, event_type="stage", actor="cron")
        session.commit()
        assert (first.seq, second.seq) == (1, 2)
        result = sign_and_verify(session, signing_key)
    assert result.ok and result.entries_total == 2


def test_a_closed_session_reused_reads_the_head_again(
    engine: Engine, signing_key: Ed25519PrivateKey
) -> None:
    session = Session(engine)
    append(session, event_type="plan", actor="cron")
    session.close()  # ends the transaction without commit: the event is gone
    with Session(engine) as other:
        other_event = append(other, event_type="plan", actor="other")
        other.commit()
    again = append(session, event_type="stage", actor="cron")
    session.commit()
    assert (other_event.seq, again.seq) == (1, 2)
    assert again.entry_hash == entry_hash(other_event.entry_hash, again.entry)
    with Session(engine) as check:
        assert sign_and_verify(check, signing_key).ok
    session.close()


def test_a_malformed_stored_head_fails_closed(sqlite_engine: Engine) -> None:
    with Session(sqlite_engine) as session:
        append(session, event_type="plan", actor="cron")
        session.commit()
    with sqlite_engine.begin() as conn:
        triggers = conn.execute(
            text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        ).scalars()
        for name in list(triggers):
            conn.execute(text(f'DROP TRIGGER "{name}"'))
        conn.execute(text("UPDATE audit_event SET entry_hash = 'NOT-HEX'"))
    with Session(sqlite_engine) as session, pytest.raises(AuditWriteError):
        append(session, event_type="stage", actor="cron")
