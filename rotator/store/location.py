"""Where the database is and which schema this code expects; no SQLAlchemy here.

Kept apart from `rotator.store.db` so `rotate status` can find and check a SQLite file
without loading SQLAlchemy (see `rotator.store.status`).
"""

from __future__ import annotations

import os
from pathlib import Path

from rotator.paths import default_database_path

SCHEMA_REVISION = "0005"
"""The Alembic head this code expects; a test pins it to the migrations' real head."""


def database_url() -> str:
    url = os.environ.get("ROTATOR_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{default_database_path()}"


def sqlite_file(url: str) -> Path | None:
    """Return the file of a plain `sqlite:///path` URL; None for anything else.

    Anything else (PostgreSQL, a driver suffix, query options, an escaped or in-memory
    name) is left to SQLAlchemy, which knows every form.
    """
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return None
    path = url[len(prefix) :]
    if not path or path == ":memory:" or any(c in path for c in "?%#"):
        return None
    return Path(path)
