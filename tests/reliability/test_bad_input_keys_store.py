"""Bad keys, databases, audit trails, service-account keys and clocks: each named clearly,
with the documented exit code, and nothing changed."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rotator.store.db import SCHEMA_REVISION
from tests.reliability.conftest import GCP, RESEND, Case, expect

OTHER_KEY = base64.b64encode(b"k" * 32).decode()


def _key_file(path: Path, text: str) -> Path:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


# ----------------------------------------------------------------------------- keys
def test_wrong_master_key(q1: Case) -> None:
    expect(
        q1,
        "emergency",
        RESEND,
        "--reason",
        "test",
        "--yes",
        code=5,
        message="stored value(s) are encrypted under master key id",
        env={"ROTATOR_MASTER_KEY": OTHER_KEY},
    )


def test_missing_master_key(q1: Case) -> None:
    (q1.home / "keys" / "master.key").unlink()
    expect(
        q1,
        "emergency",
        RESEND,
        "--reason",
        "test",
        "--yes",
        code=5,
        message="no master key: ",
    )


def test_master_key_not_base64(q1: Case) -> None:
    expect(
        q1,
        "emergency",
        RESEND,
        "--reason",
        "test",
        "--yes",
        code=5,
        message="the master key from ROTATOR_MASTER_KEY is not base64",
        env={"ROTATOR_MASTER_KEY": "not*base64"},
    )


def test_master_key_readable_by_others(q1: Case) -> None:
    key = q1.home / "keys" / "master.key"
    key.chmod(0o644)
    expect(
        q1,
        "emergency",
        RESEND,
        "--reason",
        "test",
        "--yes",
        code=5,
        message=f"key file {key} is readable by others (mode 0644); run `chmod 600 {key}`",
    )


def test_rewrap_with_a_wrong_old_key(q1: Case) -> None:
    wrong = _key_file(q1.root / "wrong-old.key", base64.b64encode(b"w" * 32).decode())
    new = _key_file(q1.root / "new.key", OTHER_KEY)
    expect(
        q1,
        "keys",
        "rewrap",
        "--old-key-file",
        str(wrong),
        code=5,
        message="which is neither the old",
        env={"ROTATOR_MASTER_KEY_FILE": str(new)},
    )


def test_check_names_a_credential_that_is_not_set(q1: Case) -> None:
    expect(
        q1,
        "check",
        code=2,
        message="credential 'cloudflare_api_token': the environment variable "
        "ROTATOR_SANDBOX_CLOUDFLARE_TOKEN is not set",
        env={"ROTATOR_SANDBOX_CLOUDFLARE_TOKEN": ""},
    )


# ----------------------------------------------------------------------------- database
@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[None]:
    """Make a file read-only even for root (the immutable flag), else by its mode."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(path)], check=False).returncode != 0:
            pytest.skip("running as root and chattr +i is not supported here")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        path.chmod(0o400)
        try:
            yield
        finally:
            path.chmod(0o600)


def test_read_only_database(q1: Case) -> None:
    # SQLite begins the write transaction on a read-only file and fails at the first
    # write, the audit event; the engine names the database as the problem (exit 6).
    with _read_only(q1.db):
        expect(q1, "approve", RESEND, code=6, message="the database is read-only")


def test_locked_database(q1: Case) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            f"c = sqlite3.connect({str(q1.db)!r}, isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE')\nprint('locked', flush=True)\ntime.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        expect(
            q1,
            "approve",
            RESEND,
            code=6,
            message="database is locked; another rotate may hold it (try again)",
            env={"ROTATOR_DB_BUSY_TIMEOUT": "1"},
        )
    finally:
        holder.kill()
        holder.wait()


def test_postgresql_unreachable(q1: Case) -> None:
    expect(
        q1,
        "status",
        code=6,
        message="cannot open the database postgresql://postgres@127.0.0.1:1/rotator: "
        "connection failed",
        env={"ROTATOR_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/rotator"},
    )


def test_database_url_that_is_not_a_url(q1: Case) -> None:
    expect(
        q1,
        "status",
        code=6,
        message="the database URL <unparsable database URL> cannot be used",
        env={"ROTATOR_DATABASE_URL": "rotator.db"},
    )


def test_old_schema_on_postgresql(q1: Case, pg_url: str) -> None:
    import psycopg

    plain = pg_url.replace("+psycopg", "")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('0000')")
    done = expect(
        q1,
        "status",
        code=6,
        message=f"has schema 0000, this rotator needs {SCHEMA_REVISION}; run `rotate db upgrade`",
        env={"ROTATOR_DATABASE_URL": pg_url},
    )
    assert "password" not in done.stderr
    with psycopg.connect(plain) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        version = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert tables == [("alembic_version",)] and version == [("0000",)]


# ----------------------------------------------------------------------------- audit
def test_tampered_audit_trail_names_the_entry(q1: Case) -> None:
    from audit.schema import remove_append_only_ddl

    conn = sqlite3.connect(q1.db, isolation_level=None)
    try:
        for statement in remove_append_only_ddl("sqlite"):
            conn.execute(statement)
        seq, entry = conn.execute("SELECT seq, entry FROM audit_event ORDER BY seq").fetchall()[3]
        changed = bytes(entry).replace(b"ops@prepare", b"eve@prepare")
        assert changed != bytes(entry)
        conn.execute("UPDATE audit_event SET entry = ? WHERE seq = ?", (changed, seq))
    finally:
        conn.close()
    rows, events = q1.rows(), q1.audit_types()
    done = q1.rotate("audit", "verify")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"entry {seq} INVALID" in done.stdout, done.stdout
    assert q1.rows() == rows and q1.audit_types() == events


# ----------------------------------------------------------------------------- Google
def _foreign_service_account(case: Case) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    path = case.root / "world" / "gcp-service-account.json"
    data = json.loads(path.read_text())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    data["private_key"] = other.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path.write_text(json.dumps(data))
    return path


def _gcp_emergency(
    case: Case, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    keys_before = case.state.sandbox.state()["credentials"]["gcp_api_keys"]
    done = case.rotate("emergency", GCP, "--reason", "test", "--yes", env=env)
    # The emergency is recorded, then fails needing a person; nothing was created.
    assert done.returncode == 1, done.stdout + done.stderr
    assert "failed" in done.stdout
    assert case.state.sandbox.state()["credentials"]["gcp_api_keys"] == keys_before
    return done


def test_service_account_key_google_rejects(q1: Case) -> None:
    path = _foreign_service_account(q1)
    pem_body = json.loads(path.read_text())["private_key"].splitlines()[1]
    done = _gcp_emergency(q1)
    output = done.stdout + done.stderr
    assert f"Google rejected the service-account key in {path}" in output
    assert "invalid_grant" in output
    assert pem_body not in output


def test_clock_far_off_is_rejected_by_google(q1: Case) -> None:
    done = _gcp_emergency(q1, env={"ROTATOR_FAKE_TIME": "2031-06-01T02:30:00+00:00"})
    output = done.stdout + done.stderr
    assert "Google rejected the service-account key in" in output
    assert "this host's clock is wrong" in output
