"""Tamper with the trail in the database, as its owner could: each change is found and named."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from audit_test_support import (
    KEY_NAME,
    ORIGIN,
    build_trail,
    checkpoint_problems,
    entry_problems,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine, text
from sqlmodel import Session

from audit.checkpoint import sign_note
from audit.dbverify import verify_database
from audit.entry import encode_entry
from audit.schema import remove_append_only_ddl
from audit.verify import VerifyResult, parse_checkpoint
from rotator.clock import now


@pytest.fixture
def sink(tmp_path: Path) -> Path:
    return tmp_path / "checkpoints.sink"


@pytest.fixture
def trail(engine: Engine, signing_key: Ed25519PrivateKey, sink: Path) -> Engine:
    build_trail(engine, signing_key, sink, count=20, every=5)
    return engine


def tamper(engine: Engine, change: Callable[[Connection], None]) -> None:
    """Drop the append-only triggers, as the owner of the tables can, and change the rows."""
    with engine.begin() as conn:
        for statement in remove_append_only_ddl(conn.dialect.name):
            conn.exec_driver_sql(statement)
        change(conn)


def verify(engine: Engine, key: Ed25519PrivateKey, sink: Path) -> VerifyResult:
    with Session(engine) as session:
        return verify_database(session, key.public_key(), sink, origin=ORIGIN)


def entry_bytes(conn: Connection, seq: int) -> bytes:
    return bytes(
        conn.execute(text("SELECT entry FROM audit_event WHERE seq = :s"), {"s": seq}).scalar_one()
    )


def set_entry(conn: Connection, seq: int, data: bytes) -> None:
    conn.execute(text("UPDATE audit_event SET entry = :e WHERE seq = :s"), {"e": data, "s": seq})


def test_untouched_database_verifies(
    trail: Engine, signing_key: Ed25519PrivateKey, sink: Path
) -> None:
    result = verify(trail, signing_key, sink)
    assert result.ok, result.problems
    assert result.summary() == "20/20 entries valid, 8/8 checkpoints valid"


def test_one_byte_changed(trail: Engine, signing_key: Ed25519PrivateKey, sink: Path) -> None:
    def change(conn: Connection) -> None:
        set_entry(conn, 4, entry_bytes(conn, 4).replace(b'"n":4', b'"n":5'))

    tamper(trail, change)
    assert entry_problems(verify(trail, signing_key, sink)) == [(4, "hash mismatch")]


def test_one_entry_deleted(trail: Engine, signing_key: Ed25519PrivateKey, sink: Path) -> None:
    tamper(trail, lambda conn: conn.execute(text("DELETE FROM audit_event WHERE seq = 8")))
    assert entry_problems(verify(trail, signing_key, sink)) == [(9, "seq gap 8..8")]


def test_two_entries_swapped(trail: Engine, signing_key: Ed25519PrivateKey, sink: Path) -> None:
    def change(conn: Connection) -> None:
        a, b = entry_bytes(conn, 12), entry_bytes(conn, 13)
        set_entry(conn, 12, b)
        set_entry(conn, 13, a)

    tamper(trail, change)
    problems = sorted(entry_problems(verify(trail, signing_key, sink)))
    assert problems == [(12, "out of order"), (13, "out of order")]


def test_one_entry_inserted(trail: Engine, signing_key: Ed25519PrivateKey, sink: Path) -> None:
    def change(conn: Connection) -> None:
        for seq in range(20, 6, -1):  # make room at 7, one row at a time for the primary key
            conn.execute(
                text("UPDATE audit_event SET seq = :n WHERE seq = :s"), {"n": seq + 1, "s": seq}
            )
        head = conn.execute(text("SELECT entry_hash FROM audit_event WHERE seq = 6")).scalar_one()
        forged = encode_entry(
            seq=7, prev=head, time=now(), actor="mallory", event_type="approval", details={}
        )
        conn.execute(
            text(
                "INSERT INTO audit_event (seq, entry, entry_hash, time, actor, event_type) "
                "VALUES (7, :e, 'x', :t, 'mallory', 'approval')"
            ),
            {"e": forged, "t": now()},
        )

    tamper(trail, change)
    assert entry_problems(verify(trail, signing_key, sink)) == [(7, "inserted")]


def test_tail_truncated_is_caught_by_the_sink(
    trail: Engine, signing_key: Ed25519PrivateKey, sink: Path
) -> None:
    def change(conn: Connection) -> None:
        conn.execute(text("DELETE FROM audit_event WHERE seq > 15"))
        conn.execute(text("DELETE FROM audit_checkpoint WHERE size > 15"))

    tamper(trail, change)
    result = verify(trail, signing_key, sink)
    assert entry_problems(result) == []
    assert checkpoint_problems(result) == [("sink checkpoint", 4, "size beyond trail")]


def test_checkpoint_signed_with_another_key(
    trail: Engine, signing_key: Ed25519PrivateKey, other_key: Ed25519PrivateKey, sink: Path
) -> None:
    def change(conn: Connection) -> None:
        body = conn.execute(text("SELECT body FROM audit_checkpoint WHERE size = 10")).scalar_one()
        forged = sign_note(parse_checkpoint(bytes(body)).text, other_key, KEY_NAME)
        conn.execute(text("UPDATE audit_checkpoint SET body = :b WHERE size = 10"), {"b": forged})

    tamper(trail, change)
    assert checkpoint_problems(verify(trail, signing_key, sink)) == [
        ("checkpoint", 2, "bad signature")
    ]


def test_copy_columns_are_not_trusted(
    trail: Engine, signing_key: Ed25519PrivateKey, sink: Path
) -> None:
    """Changing only the query columns is found: they are checked against the stored bytes."""
    tamper(
        trail,
        lambda conn: conn.execute(text("UPDATE audit_event SET actor = 'x', entry_hash = 'y'")),
    )
    result = verify(trail, signing_key, sink)
    assert not result.ok
    assert entry_problems(result) == [(n, "copy column mismatch") for n in range(1, 21)]
    assert "entry_hash, actor disagree" in result.problems[0].detail
