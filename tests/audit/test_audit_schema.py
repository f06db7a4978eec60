"""The database itself refuses UPDATE and DELETE on the audit tables; PostgreSQL roles."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from audit.schema import append_only_ddl, install_append_only, postgres_roles_sql
from audit.trail import append

STATEMENTS = [
    "UPDATE audit_event SET actor = 'mallory'",
    "UPDATE audit_event SET entry = entry",
    "DELETE FROM audit_event",
    "DELETE FROM audit_event WHERE seq = 1",
    "UPDATE audit_checkpoint SET size = 0",
    "DELETE FROM audit_checkpoint",
]


def seeded(engine: Engine) -> None:
    with Session(engine) as session:
        append(session, event_type="plan", actor="cron")
        session.exec(  # type: ignore[call-overload]
            text(
                "INSERT INTO audit_checkpoint (size, head_hash, body, created_at) "
                "VALUES (1, 'h', :b, CURRENT_TIMESTAMP)"
            ).bindparams(b=b"note")
        )
        session.commit()


@pytest.mark.parametrize("statement", STATEMENTS)
def test_plain_sql_cannot_change_the_trail(engine: Engine, statement: str) -> None:
    seeded(engine)
    with pytest.raises(DBAPIError) as caught, engine.begin() as conn:
        conn.execute(text(statement))
    assert "append-only" in str(caught.value)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_event")).scalar_one() == 1


@pytest.mark.postgres
@pytest.mark.parametrize("table", ["audit_event", "audit_checkpoint"])
def test_truncate_is_refused_on_postgres(pg_engine: Engine, table: str) -> None:
    seeded(pg_engine)
    with pytest.raises(DBAPIError, match="append-only"), pg_engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {table}"))


def test_install_is_idempotent(engine: Engine) -> None:
    with engine.begin() as conn:
        install_append_only(conn)
    test_plain_sql_cannot_change_the_trail(engine, "DELETE FROM audit_event")


def test_unknown_dialect_is_refused() -> None:
    with pytest.raises(ValueError):
        append_only_ddl("mysql")


@pytest.mark.parametrize("name", ["Rotator", "a b", "x;drop", "", "rotator-app"])
def test_role_names_are_checked(name: str) -> None:
    with pytest.raises(ValueError):
        postgres_roles_sql(app_role=name)


@pytest.mark.postgres
def test_postgres_roles_grant_what_they_say(
    pg_engine: Engine, pg_admin: psycopg.Connection
) -> None:
    suffix = uuid.uuid4().hex[:8]
    app, auditor = f"rot_app_{suffix}", f"rot_aud_{suffix}"
    seeded(pg_engine)
    try:
        with pg_engine.begin() as conn:
            conn.exec_driver_sql(postgres_roles_sql(app_role=app, auditor_role=auditor))

        with pg_engine.connect() as conn:
            conn.exec_driver_sql(f"SET ROLE {app}")
            with Session(bind=conn) as session:
                append(session, event_type="stage", actor="cron")
                session.commit()
            conn.execute(text("UPDATE rotation SET attempts = attempts + 1"))
            conn.commit()
            for statement in ("UPDATE audit_event SET actor = 'x'", "DELETE FROM audit_checkpoint"):
                with pytest.raises(DBAPIError, match="permission denied"):
                    conn.execute(text(statement))
                conn.rollback()
                conn.exec_driver_sql(f"SET ROLE {app}")

        with pg_engine.connect() as conn:
            conn.exec_driver_sql(f"SET ROLE {auditor}")
            assert conn.execute(text("SELECT count(*) FROM audit_event")).scalar_one() == 2
            for statement in (
                "UPDATE audit_event SET actor = 'x'",
                "INSERT INTO meta (key, value) VALUES ('k', 'v')",
                "DELETE FROM rotation",
            ):
                with pytest.raises(DBAPIError, match="permission denied"):
                    conn.execute(text(statement))
                conn.rollback()
                conn.exec_driver_sql(f"SET ROLE {auditor}")
    finally:
        pg_engine.dispose()  # pooled connections still carry SET ROLE
        with pg_engine.begin() as conn:
            for role in (app, auditor):
                conn.exec_driver_sql(f"DROP OWNED BY {role}")
        pg_engine.dispose()
        for role in (app, auditor):
            pg_admin.execute(f"DROP ROLE IF EXISTS {role}")


def test_docs_show_the_roles_sql_as_generated() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "audit.md").read_text()
    assert "```sql\n" + postgres_roles_sql() + "```" in docs
