"""Open the database: create and upgrade SQLite on first use, refuse an old PostgreSQL schema.

Writers on SQLite begin with `BEGIN IMMEDIATE` so two runners serialise on the write lock
at the start of a transaction instead of failing half-way with "database is locked".
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlmodel import Session, create_engine

from rotator.errors import SchemaOutOfDateError, StoreError
from rotator.paths import default_database_path

SCHEMA_REVISION = "0004"
"""The Alembic head this code expects; a test pins it to the migrations' real head."""


BUSY_TIMEOUT_ENV = "ROTATOR_DB_BUSY_TIMEOUT"
"""Seconds a SQLite writer waits for another one's lock before giving up (default 30)."""


def busy_timeout() -> float:
    text = os.environ.get(BUSY_TIMEOUT_ENV, "")
    try:
        value = float(text) if text else 30.0
    except ValueError:
        raise StoreError(f"{BUSY_TIMEOUT_ENV}={text!r} is not a number of seconds") from None
    return max(0.0, value)


def database_url() -> str:
    url = os.environ.get("ROTATOR_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{default_database_path()}"


def redacted(url: str) -> str:
    """Hide a password in a database URL before it reaches a message."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is itself shown as the problem
        return "<unparsable database URL>"


@dataclass
class Store:
    engine: Engine
    url: str

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Session]:
        """Yield a session in a write transaction, committed on success, rolled back on error."""
        with self.engine.connect() as conn:
            conn.info["begin"] = "BEGIN IMMEDIATE"
            with Session(bind=conn, expire_on_commit=False) as session:
                try:
                    # Begin now, so a locked or read-only database is named as such
                    # instead of failing the first write (an audit event) half-way.
                    session.connection()
                except OperationalError as exc:
                    conn.info.pop("begin", None)
                    raise StoreError(
                        f"cannot write to the database {redacted(self.url)}: {_reason(exc)}; "
                        "another rotate may hold it (try again), or the file is read-only"
                    ) from None
                try:
                    yield session
                    session.commit()
                except BaseException:
                    session.rollback()
                    raise
                finally:
                    conn.info.pop("begin", None)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_engine(url: str) -> Engine:
    from sqlalchemy.engine import make_url

    path = make_url(url).database
    if path and path != ":memory:":
        file = Path(path)
        file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not file.exists():
            # Create it 0600 before SQLite does, so the file is never world-readable.
            os.close(os.open(file, os.O_WRONLY | os.O_CREAT, 0o600))
    timeout = busy_timeout()
    engine = create_engine(url, connect_args={"isolation_level": None, "timeout": timeout})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        # A read-only file keeps its journal mode; reading still works.
        with contextlib.suppress(Exception):
            cur.execute("PRAGMA journal_mode=WAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.info.get("begin", "BEGIN"))

    return engine


def create(url: str | None = None) -> Engine:
    url = url or database_url()
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return create_engine(url, pool_pre_ping=True)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        try:
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        except OperationalError:
            return None
        except Exception as exc:  # PostgreSQL: a missing table is a ProgrammingError
            if "alembic_version" in str(exc):
                return None
            raise
    return row[0] if row else None


def upgrade(engine: Engine) -> None:
    """Bring the schema to the head revision with Alembic."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent.parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def open_store(url: str | None = None, *, auto_upgrade: bool | None = None) -> Store:
    """Open the store; upgrade a SQLite schema in place, refuse an old PostgreSQL one."""
    url = url or database_url()
    try:
        engine = create(url)
        revision = current_revision(engine)
    except ArgumentError:
        raise StoreError(
            f"the database URL {redacted(url)} cannot be used; set ROTATOR_DATABASE_URL to "
            "postgresql://user@host/db, or unset it for the SQLite file in the state directory"
        ) from None
    except OperationalError as exc:
        raise StoreError(
            f"cannot open the database {redacted(url)}: {_reason(exc)}; check "
            "ROTATOR_DATABASE_URL, that the server is running, and file permissions"
        ) from None
    if revision != SCHEMA_REVISION:
        if auto_upgrade is None:
            auto_upgrade = engine.dialect.name == "sqlite"
        if not auto_upgrade:
            found = revision or "no schema"
            raise SchemaOutOfDateError(
                f"the database {redacted(url)} has schema {found}, this rotator needs "
                f"{SCHEMA_REVISION}; run `rotate db upgrade` (after a backup)"
            )
        try:
            upgrade(engine)
        except OperationalError as exc:
            raise StoreError(f"cannot upgrade {redacted(url)}: {_reason(exc)}") from None
    return Store(engine, url)


def _reason(exc: OperationalError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig else "unknown error"
