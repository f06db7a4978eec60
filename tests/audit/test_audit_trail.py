"""Appending in the caller's transaction, failing closed, concurrency, and reading back."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from audit_test_support import sign_and_verify
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from freezegun import freeze_time
from sqlalchemy import Engine, create_engine, func, select
from sqlmodel import Session

from audit.entry import ZERO_HASH, decode_entry
from audit.trail import append, iter_events, read_head
from audit.verify import entry_hash
from rotator.errors import AuditWriteError
from rotator.secret import Secret
from rotator.store.models import AuditEvent


def count(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.execute(select(func.count()).select_from(AuditEvent)).scalar_one())


def test_append_chains_and_copies_columns(engine: Engine) -> None:
    with Session(engine) as session:
        first = append(session, event_type="plan", actor="cron", secret="S", details={"n": 1})
        second = append(session, event_type="stage", actor="cron", environment="staging")
        session.commit()
        assert (first.seq, second.seq) == (1, 2)
        assert first.entry_hash == entry_hash(ZERO_HASH, first.entry)
        assert decode_entry(second.entry)["prev"] == first.entry_hash
        assert second.entry_hash == entry_hash(first.entry_hash, second.entry)
        assert read_head(session) == (2, second.entry_hash)
        entry = decode_entry(first.entry)
        assert entry["host"] and entry["tool_version"] and entry["secret"] == "S"
        assert first.time.tzinfo is not None


def test_append_does_not_commit(engine: Engine) -> None:
    with Session(engine) as session:
        append(session, event_type="plan", actor="cron")
        session.rollback()
    assert count(engine) == 0


def test_secret_in_details_is_refused_and_nothing_written(engine: Engine) -> None:
    with Session(engine) as session:
        with pytest.raises(TypeError):
            append(session, event_type="supply", actor="alice", details={"v": Secret("x")})
        session.commit()
    assert count(engine) == 0


def test_action_is_not_taken_when_the_event_cannot_be_written(tmp_path: Path) -> None:
    """A database without the audit table stands for any write failure: fail closed."""
    broken = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    performed: list[str] = []

    def revoke_old_credential(session: Session) -> None:
        append(session, event_type="revoke", actor="cron", secret="S")
        performed.append("revoke")

    with Session(broken) as session, pytest.raises(AuditWriteError) as caught:
        revoke_old_credential(session)
    assert performed == []
    assert "not taken" in str(caught.value)
    broken.dispose()


def test_iter_events_filters(engine: Engine) -> None:
    with Session(engine) as session:
        with freeze_time("2026-01-10T10:00:00Z"):
            append(session, event_type="plan", actor="cron", secret="A")
        with freeze_time("2026-02-10T10:00:00Z"):
            append(session, event_type="approve", actor="alice", secret="B")
        with freeze_time("2026-03-10T10:00:00Z"):
            append(session, event_type="plan", actor="cron", secret="A")
        session.commit()
        seqs = lambda **kw: [e.seq for e in iter_events(session, **kw)]  # noqa: E731
        assert seqs() == [1, 2, 3]
        assert seqs(secret="A") == [1, 3]
        assert seqs(actor="alice") == [2]
        assert seqs(event_type="plan") == [1, 3]
        assert seqs(since=datetime(2026, 2, 1, tzinfo=UTC)) == [2, 3]
        assert seqs(until=datetime(2026, 2, 10, 10, tzinfo=UTC)) == [1]
        assert seqs(since=datetime(2026, 2, 1), until=datetime(2026, 3, 1)) == [2]


@pytest.mark.postgres
def test_concurrent_appenders_serialise_on_postgres(
    pg_engine: Engine, signing_key: Ed25519PrivateKey
) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker(n: int) -> None:
        try:
            barrier.wait()
            for i in range(25):
                with Session(pg_engine) as session:
                    append(session, event_type="step", actor=f"runner-{n}", details={"i": i})
                    session.commit()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Session(pg_engine) as session:
        result = sign_and_verify(session, signing_key)
    assert result.ok and result.entries_total == 100
