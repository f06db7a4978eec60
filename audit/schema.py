"""Make the audit tables append-only in the database itself, and state the PostgreSQL roles.

Triggers stop UPDATE and DELETE from any client, including a person with a SQL shell.
They do not stop the owner of the tables or a superuser, who can drop them; that is
what the signed checkpoints and the copy of them outside the database are for.
"""

from __future__ import annotations

import re

from sqlalchemy.engine import Connection

AUDIT_TABLES = ("audit_event", "audit_checkpoint")
APPEND_ONLY_MESSAGE = "audit trail is append-only"
_PG_FUNCTION = "rotator_audit_append_only"
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _sqlite_install() -> list[str]:
    statements = []
    for table in AUDIT_TABLES:
        for action in ("UPDATE", "DELETE"):
            statements.append(
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()} "
                f"BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
            )
    return statements


def _postgres_install() -> list[str]:
    statements = [
        f"CREATE OR REPLACE FUNCTION {_PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        # No "%" placeholders: drivers that format parameters would read them as their own.
        f"BEGIN RAISE EXCEPTION USING MESSAGE = '{APPEND_ONLY_MESSAGE} (' || TG_OP || ' on ' "
        "|| TG_TABLE_NAME || ')', ERRCODE = 'insufficient_privilege'; END $$"
    ]
    for table in AUDIT_TABLES:
        statements += [
            f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {_PG_FUNCTION}()",
            f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {_PG_FUNCTION}()",
        ]
    return statements


def append_only_ddl(dialect: str) -> list[str]:
    """Return the statements that make the audit tables append-only on `dialect`."""
    if dialect == "sqlite":
        return _sqlite_install()
    if dialect == "postgresql":
        return _postgres_install()
    raise ValueError(f"no append-only triggers for the {dialect} database")


def remove_append_only_ddl(dialect: str) -> list[str]:
    """Return the statements that drop the triggers again (for a migration's downgrade)."""
    if dialect == "sqlite":
        return [
            f"DROP TRIGGER IF EXISTS {table}_no_{action}"
            for table in AUDIT_TABLES
            for action in ("update", "delete")
        ]
    if dialect == "postgresql":
        drops = [
            f"DROP TRIGGER IF EXISTS {table}_{suffix} ON {table}"
            for table in AUDIT_TABLES
            for suffix in ("append_only", "no_truncate")
        ]
        return [*drops, f"DROP FUNCTION IF EXISTS {_PG_FUNCTION}()"]
    raise ValueError(f"no append-only triggers for the {dialect} database")


def install_append_only(connection: Connection) -> None:
    """Install the append-only triggers on the audit tables; safe to run again."""
    for statement in append_only_ddl(connection.dialect.name):
        connection.exec_driver_sql(statement)


def postgres_roles_sql(app_role: str = "rotator_app", auditor_role: str = "rotator_auditor") -> str:
    """Return the SQL an administrator runs to create the application and auditor roles.

    Both are group roles (NOLOGIN): grant them to login roles. Run it as the owner of the
    tables, after the schema exists, and never let the tool log in as that owner: an
    owner can drop the triggers.
    """
    for role in (app_role, auditor_role):
        if not _ROLE_NAME.match(role):
            raise ValueError(f"{role!r} is not a plain lowercase PostgreSQL role name")
    if app_role == auditor_role:
        raise ValueError("the application and auditor roles must differ")
    tables = ", ".join(AUDIT_TABLES)
    # Role names are checked against a strict pattern above, so formatting them is safe.
    return f"""\
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{auditor_role}') THEN
    CREATE ROLE {auditor_role} NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{app_role}') THEN
    CREATE ROLE {app_role} NOLOGIN;
  END IF;
END $$;

-- Auditors read everything and change nothing.
GRANT USAGE ON SCHEMA public TO {auditor_role};
GRANT SELECT ON ALL TABLES IN SCHEMA public TO {auditor_role};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {auditor_role};

-- The tool reads and writes its state, but may only add to the audit trail.
GRANT USAGE ON SCHEMA public TO {app_role};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app_role};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {app_role};
REVOKE UPDATE, DELETE, TRUNCATE ON {tables} FROM {app_role};
GRANT SELECT, INSERT ON {tables} TO {app_role};
"""  # noqa: S608
