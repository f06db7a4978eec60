"""An attacker who can write the database but not the key files: nothing they do verifies.

Each test is one reproduction of issue 14 (items 1 to 4): rewritten history, a deleted
trail, a cut tail, a missing or fake sink, a forged but correctly chained entry, an
approval row inserted behind the tool's back, hostile bytes and edited copy columns.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from audit_test_support import (
    KEY_NAME,
    ORIGIN,
    checkpoint_indexes,
    entry_problems,
    read_lines,
    sink_from_export,
    write_lines,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine, text
from sqlmodel import Session

from audit.checkpoint import append_to_sink, make_checkpoint, sync_sink
from audit.dbverify import verify_database
from audit.entry import encode_entry
from audit.export import export
from audit.mac import ZERO_MAC, ForgedEntryError, seal
from audit.report import render_report
from audit.schema import postgres_roles_sql, remove_append_only_ddl
from audit.synthetic import write_synthetic_export
from audit.trail import append, authenticated_approvals, iter_events, read_head
from audit.verify import VerifyResult, entry_hash, verify_export
from rotator.clock import now
from rotator.store.models import Approval, Rotation, SecretRecord

ROOT = Path(__file__).resolve().parents[2]
ROTATION = "rot-1"


@pytest.fixture
def mac_key() -> bytes:
    return secrets.token_bytes(32)


def tool_trail(
    engine: Engine, key: Ed25519PrivateKey, mac_key: bytes, sink: Path | None, count: int = 6
) -> None:
    """Write `count` events as the tool does (with MACs), then sign a checkpoint."""
    with Session(engine) as session:
        for i in range(1, count + 1):
            append(
                session,
                event_type="rotation.step",
                actor="cron",
                secret="BANDOFBAKERS_RESEND_API_KEY",
                rotation_id=ROTATION,
                details={"step": "stage", "n": i},
                mac_key=mac_key,
            )
        cp = make_checkpoint(session, key, ORIGIN, KEY_NAME, mac_key=mac_key)
        assert cp is not None
        body = cp.body
        session.commit()
    if sink is not None:
        append_to_sink(sink, body)


def forge(conn: Connection, event_type: str, actor: str, details: dict[str, object]) -> int:
    """Insert a correctly chained entry, as a database writer without the keys can."""
    head = conn.execute(
        text("SELECT seq, entry_hash FROM audit_event ORDER BY seq DESC LIMIT 1")
    ).one()
    seq = int(head[0]) + 1
    stored = encode_entry(
        seq=seq,
        prev=head[1],
        time=now(),
        actor=actor,
        event_type=event_type,
        rotation_id=ROTATION,
        secret="BANDOFBAKERS_RESEND_API_KEY",
        details=details,
        mac=ZERO_MAC,
    )
    # A guessed key yields a well-formed MAC that is still not the tool's.
    stored = seal(secrets.token_bytes(32), stored)
    conn.execute(
        text(
            "INSERT INTO audit_event (seq, entry, entry_hash, time, actor, secret, environment,"
            " rotation_id, event_type) VALUES (:seq, :entry, :hash, :time, :actor, :secret,"
            " NULL, :rid, :type)"
        ),
        {
            "seq": seq,
            "entry": stored,
            "hash": entry_hash(head[1], stored),
            "time": now(),
            "actor": actor,
            "secret": "BANDOFBAKERS_RESEND_API_KEY",
            "rid": ROTATION,
            "type": event_type,
        },
    )
    return seq


def reasons(result: VerifyResult) -> list[tuple[str, str]]:
    return [(p.subject, p.reason) for p in result.problems]


# --- 1. signed coverage is required ------------------------------------------------------


@pytest.fixture
def synthetic(tmp_path: Path, signing_key: Ed25519PrivateKey) -> Path:
    path = tmp_path / "trail.jsonl"
    with path.open("wb") as out:
        write_synthetic_export(out, 12, signing_key, checkpoint_every=5)
    return path


def test_rewritten_history_with_checkpoints_stripped_is_not_valid(
    synthetic: Path, signing_key: Ed25519PrivateKey
) -> None:
    lines = read_lines(synthetic)
    lines = [line for i, line in enumerate(lines) if i not in checkpoint_indexes(lines)]
    # Edit entry 4, then recompute the chain after it: every link holds again.
    prev = "0" * 64
    for i in range(1, len(lines)):
        body = lines[i].rstrip(b"\n")
        at = body.rfind(b',"prev":"') + 9
        body = body[:at] + prev.encode() + body[at + 64 :]
        if i == 4:
            body = body.replace(b'"outcome":"ok"', b'"outcome":"no"')
        lines[i] = body + b"\n"
        prev = entry_hash(prev, body)
    write_lines(synthetic, lines)
    result = verify_export(synthetic, signing_key.public_key())
    assert not result.ok
    assert reasons(result) == [("trail", "unsigned")]
    assert result.problems[0].line() == (
        "trail INVALID: unsigned (no valid signed checkpoint: nothing is proven)"
    )
    # Even an explicit acceptance of an unsigned tail does not make "nothing signed" valid.
    assert not verify_export(synthetic, signing_key.public_key(), allow_unsigned_tail=True).ok


def test_a_deleted_trail_is_not_valid(synthetic: Path, signing_key: Ed25519PrivateKey) -> None:
    write_lines(synthetic, read_lines(synthetic)[:1])
    result = verify_export(synthetic, signing_key.public_key())
    assert reasons(result) == [("trail", "empty")]


def test_a_cut_tail_without_the_sink_is_not_valid(
    synthetic: Path, signing_key: Ed25519PrivateKey
) -> None:
    lines = read_lines(synthetic)
    write_lines(synthetic, lines[: checkpoint_indexes(lines)[-1] - 1])  # entries 1..11
    result = verify_export(synthetic, signing_key.public_key())
    assert reasons(result) == [("trail", "unsigned tail")]
    assert "entries 11..11" in result.problems[0].detail


# --- 2. the sink is part of the proof ----------------------------------------------------


@pytest.fixture
def with_sink(synthetic: Path, tmp_path: Path) -> tuple[Path, Path]:
    sink = tmp_path / "sink.log"
    sink_from_export(read_lines(synthetic), sink)
    return synthetic, sink


def test_a_good_sink_verifies(with_sink: tuple[Path, Path], signing_key: Ed25519PrivateKey) -> None:
    export_file, sink = with_sink
    result = verify_export(export_file, signing_key.public_key(), sink)
    assert result.ok, result.problems
    assert result.warnings == []


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.unlink(), "missing"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: (p.unlink(), p.symlink_to("/dev/null")), "is a symlink"),
        (lambda p: (p.unlink(), os.mkfifo(p)), "is not a regular file"),
        (lambda p: p.write_bytes(b"rotator-checkpoint 99999999999\n"), "malformed"),
        (lambda p: p.write_bytes(b"\x00" * 5000), "malformed"),
    ],
    ids=["missing", "empty", "symlink-dev-null", "fifo", "huge-length", "garbage"],
)
def test_a_bad_sink_fails_with_the_reason(
    with_sink: tuple[Path, Path], signing_key: Ed25519PrivateKey, make: object, reason: str
) -> None:
    export_file, sink = with_sink
    make(sink)  # type: ignore[operator]
    result = verify_export(export_file, signing_key.public_key(), sink)
    assert not result.ok
    assert reason in [p.reason for p in result.problems if p.subject.startswith("sink")]


def test_a_sink_behind_the_trail_fails(
    with_sink: tuple[Path, Path], signing_key: Ed25519PrivateKey
) -> None:
    export_file, sink = with_sink
    records = sink.read_bytes().split(b"rotator-checkpoint ")[1:]
    sink.write_bytes(b"".join(b"rotator-checkpoint " + r for r in records[:-1]))
    result = verify_export(export_file, signing_key.public_key(), sink)
    assert reasons(result) == [("sink", "behind the trail")]
    assert "signed up to entry 12, the sink only up to 10" in result.problems[0].detail


@pytest.mark.parametrize("device", ["/dev/full", "/dev/null", "/dev/zero"])
def test_devices_as_sink_fail_fast_and_small(
    with_sink: tuple[Path, Path], signing_key: Ed25519PrivateKey, tmp_path: Path, device: str
) -> None:
    export_file, _ = with_sink
    key = tmp_path / "pub.pem"
    key.write_bytes(
        signing_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    # A 200 MB address-space cap: the old reader grew without bound on /dev/full.
    limit = "import resource; resource.setrlimit(resource.RLIMIT_AS, (400 << 20, 400 << 20))"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"{limit}; import sys; from audit.verify import main; sys.exit(main())",
            str(export_file),
            "--public-key",
            str(key),
            "--checkpoints-file",
            device,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"sink INVALID: is not a regular file ({device})" in done.stdout


def test_a_missed_copy_lands_with_the_next_sync(
    sqlite_engine: Engine, signing_key: Ed25519PrivateKey, mac_key: bytes, tmp_path: Path
) -> None:
    sink = tmp_path / "sink.log"
    tool_trail(sqlite_engine, signing_key, mac_key, sink=None, count=3)  # the copy failed
    tool_trail(sqlite_engine, signing_key, mac_key, sink=None, count=2)
    with Session(sqlite_engine) as session:
        before = verify_database(session, signing_key.public_key(), sink, origin=ORIGIN)
        assert ("sink", "missing") in reasons(before)
        assert sync_sink(session, sink) == 2
        assert sync_sink(session, sink) == 0
        after = verify_database(session, signing_key.public_key(), sink, origin=ORIGIN)
    assert after.ok, after.problems


def test_sync_refuses_a_sink_that_is_a_symlink(
    sqlite_engine: Engine, signing_key: Ed25519PrivateKey, mac_key: bytes, tmp_path: Path
) -> None:
    sink = tmp_path / "sink.log"
    sink.symlink_to("/dev/null")
    tool_trail(sqlite_engine, signing_key, mac_key, sink=None, count=1)
    with Session(sqlite_engine) as session, pytest.raises(OSError, match="not a regular file"):
        sync_sink(session, sink)


# --- 3. only the tool can write entries that verify --------------------------------------


def insert_as_app_role(
    engine: Engine, pg_admin: psycopg.Connection | None, forge_fn: object
) -> int:
    """Run `forge_fn(conn)` as the application role on PostgreSQL, as-is on SQLite."""
    if engine.dialect.name != "postgresql":
        with engine.begin() as conn:
            return forge_fn(conn)  # type: ignore[operator,no-any-return]
    suffix = uuid.uuid4().hex[:8]
    app, auditor = f"rot_app_{suffix}", f"rot_aud_{suffix}"
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(postgres_roles_sql(app_role=app, auditor_role=auditor))
        with engine.begin() as conn:
            conn.exec_driver_sql(f"SET ROLE {app}")
            return forge_fn(conn)  # type: ignore[operator,no-any-return]
    finally:
        engine.dispose()  # pooled connections still carry SET ROLE
        with engine.begin() as conn:
            for role in (app, auditor):
                conn.exec_driver_sql(f"DROP OWNED BY {role}")
        engine.dispose()
        assert pg_admin is not None
        for role in (app, auditor):
            pg_admin.execute(f"DROP ROLE IF EXISTS {role}")


@pytest.fixture
def admin(request: pytest.FixtureRequest, engine: Engine) -> psycopg.Connection | None:
    if engine.dialect.name != "postgresql":
        return None
    return request.getfixturevalue("pg_admin")  # type: ignore[no-any-return]


def test_a_forged_chained_entry_is_never_signed(
    engine: Engine,
    admin: psycopg.Connection | None,
    signing_key: Ed25519PrivateKey,
    mac_key: bytes,
    tmp_path: Path,
) -> None:
    sink = tmp_path / "sink.log"
    tool_trail(engine, signing_key, mac_key, sink)
    seq = insert_as_app_role(
        engine,
        admin,
        lambda conn: forge(conn, "rotation.approved", "cfo@bandofbakers.co.uk", {"note": "ok"}),
    )
    with Session(engine) as session:
        append(session, event_type="rotation.step", actor="cron", mac_key=mac_key)
        with pytest.raises(ForgedEntryError, match=f"entry {seq}: MAC mismatch") as caught:
            make_checkpoint(session, signing_key, ORIGIN, KEY_NAME, mac_key=mac_key)
        assert caught.value.exit_code == 1
        session.rollback()
    with Session(engine) as session:
        result = verify_database(
            session, signing_key.public_key(), sink, origin=ORIGIN, mac_key=mac_key
        )
    assert not result.ok
    assert (seq, "MAC mismatch (not written by the tool)") in entry_problems(result)
    assert ("trail", "unsigned tail") in reasons(result)


def test_only_authenticated_approval_entries_count(
    engine: Engine,
    admin: psycopg.Connection | None,
    signing_key: Ed25519PrivateKey,
    mac_key: bytes,
) -> None:
    tool_trail(engine, signing_key, mac_key, sink=None, count=2)
    with Session(engine) as session:
        assert authenticated_approvals(session, ROTATION, kind="approval", mac_key=mac_key) == []
    insert_as_app_role(
        engine,
        admin,
        lambda conn: forge(conn, "rotation.approved", "cfo@bandofbakers.co.uk", {"note": "ok"}),
    )
    with Session(engine) as session:  # a row in the approval table, behind the tool's back
        record = SecretRecord(name="BANDOFBAKERS_RESEND_API_KEY", scope_env="shared", provider="r")
        session.add(record)
        session.flush()
        session.add(Rotation(id=ROTATION, secret_id=record.id or 0, kind="q", state="s", actor="x"))
        session.flush()
        session.add(Approval(rotation_id=ROTATION, kind="approval", actor="cfo@x", note="ok"))
        session.commit()
    with Session(engine) as session:
        assert authenticated_approvals(session, ROTATION, kind="approval", mac_key=mac_key) == []
        real = append(
            session,
            event_type="rotation.approved",
            actor="lead@bandofbakers.co.uk",
            rotation_id=ROTATION,
            details={"note": "looks right"},
            mac_key=mac_key,
        )
        session.commit()
        granted = authenticated_approvals(session, ROTATION, kind="approval", mac_key=mac_key)
        assert [(e["seq"], e["actor"]) for e in granted] == [(real.seq, "lead@bandofbakers.co.uk")]
        assert authenticated_approvals(session, ROTATION, kind="review", mac_key=mac_key) == []
        assert authenticated_approvals(session, "rot-other", kind="approval", mac_key=mac_key) == []
    # Pointing the copy column of the real approval at another rotation grants that one nothing.
    with engine.begin() as conn:
        for statement in remove_append_only_ddl(conn.dialect.name):
            conn.exec_driver_sql(statement)
        conn.execute(
            text("UPDATE audit_event SET rotation_id = 'rot-other' WHERE seq = :s"),
            {"s": real.seq},
        )
    with Session(engine) as session:
        assert authenticated_approvals(session, "rot-other", kind="approval", mac_key=mac_key) == []
    with pytest.raises(ValueError, match="kind"):
        authenticated_approvals(Session(engine), ROTATION, kind="sign-off", mac_key=mac_key)


def test_the_tool_signs_its_own_entries(
    engine: Engine, signing_key: Ed25519PrivateKey, mac_key: bytes, tmp_path: Path
) -> None:
    sink = tmp_path / "sink.log"
    tool_trail(engine, signing_key, mac_key, sink)
    tool_trail(engine, signing_key, mac_key, sink)
    with Session(engine) as session:
        result = verify_database(
            session, signing_key.public_key(), sink, origin=ORIGIN, mac_key=mac_key
        )
        assert read_head(session)[0] == 12
    assert result.ok, result.problems


# --- 4. hostile bytes never crash verification -------------------------------------------


def tamper(engine: Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in remove_append_only_ddl(conn.dialect.name):
            conn.exec_driver_sql(statement)
        for statement in statements:
            conn.exec_driver_sql(statement)


@pytest.mark.parametrize(
    ("statement", "shown", "export_valid"),
    [
        (
            "UPDATE audit_event SET entry = replace(entry, 'stage', 'Stage') WHERE seq = 3",
            "TEXT",
            False,
        ),
        # Same bytes, other type: the export (bytes only) still verifies; the database check
        # names the row.
        ("UPDATE audit_event SET entry = CAST(entry AS TEXT) WHERE seq = 3", "TEXT", True),
        ("UPDATE audit_event SET entry = 42 WHERE seq = 3", "int", False),
        ("UPDATE audit_event SET entry = 4.5 WHERE seq = 3", "float", False),
    ],
    ids=["replace", "cast-text", "integer", "real"],
)
def test_wrongly_typed_entries_are_located(
    sqlite_engine: Engine,
    signing_key: Ed25519PrivateKey,
    mac_key: bytes,
    tmp_path: Path,
    statement: str,
    shown: str,
    export_valid: bool,
) -> None:
    sink = tmp_path / "sink.log"
    tool_trail(sqlite_engine, signing_key, mac_key, sink)
    tamper(sqlite_engine, statement)
    with Session(sqlite_engine) as session:
        result = verify_database(session, signing_key.public_key(), sink, origin=ORIGIN)
        out = tmp_path / "export.jsonl"
        with out.open("wb") as stream:
            export(session, stream, origin=ORIGIN, public_key_pem=b"", key_name=KEY_NAME)
        page = render_report(list(iter_events(session)), result)
    assert (3, "malformed") in entry_problems(result)
    assert f"stored as {shown}; row 3" in " ".join(p.detail for p in result.problems)
    assert verify_export(out, signing_key.public_key(), sink).ok is export_valid
    assert "INVALID" in page


def test_huge_values_and_wrong_checkpoint_types_are_located(
    sqlite_engine: Engine, signing_key: Ed25519PrivateKey, mac_key: bytes, tmp_path: Path
) -> None:
    sink = tmp_path / "sink.log"
    tool_trail(sqlite_engine, signing_key, mac_key, sink)
    tamper(
        sqlite_engine,
        "UPDATE audit_event SET entry = zeroblob(20000000) WHERE seq = 2",
        "UPDATE audit_checkpoint SET body = 'not a note', size = 'six'",
    )
    with Session(sqlite_engine) as session:
        result = verify_database(session, signing_key.public_key(), sink, origin=ORIGIN)
    assert (2, "malformed") in entry_problems(result)
    assert ("checkpoint row", "malformed") in reasons(result)


def test_an_edited_type_column_is_found(
    engine: Engine, signing_key: Ed25519PrivateKey, mac_key: bytes, tmp_path: Path
) -> None:
    """Editing only `event_type` hid an event from `rotate audit log --type`; now it is named."""
    sink = tmp_path / "sink.log"
    tool_trail(engine, signing_key, mac_key, sink)
    tamper(engine, "UPDATE audit_event SET event_type = 'noise' WHERE seq = 5")
    with Session(engine) as session:
        result = verify_database(session, signing_key.public_key(), sink, origin=ORIGIN)
    assert entry_problems(result) == [(5, "copy column mismatch")]
    assert result.problems[0].detail == "event_type disagree with the entry; row 5"


def test_mac_placement_survives_tricky_details(mac_key: bytes) -> None:
    from audit.mac import check_mac

    details = {"mac": "0" * 64, "note": ',"mac":"' + "0" * 64 + '"'}
    zeroed = encode_entry(
        seq=1, prev="0" * 64, time=now(), actor="a", event_type="t", details=details, mac=ZERO_MAC
    )
    sealed = seal(mac_key, zeroed)
    assert check_mac(mac_key, sealed) is None
    assert sealed.count(b"0" * 64) >= 2  # the details kept their zeros; only the top MAC moved
    assert check_mac(mac_key, sealed.replace(b'"a"', b'"b"')) is not None
    assert hashlib.sha256(sealed).digest() != hashlib.sha256(zeroed).digest()
