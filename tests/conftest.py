"""Shared fixtures: an isolated state directory, keys, and a PostgreSQL database per test.

Under CI=true an unreachable PostgreSQL fails the run; elsewhere those tests skip with
the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# `rotate run` waits a random delay when not on a terminal (as certbot renew does);
# every test runs it from a pipe, so the delay is off for the whole suite.
os.environ["ROTATOR_NO_DELAY"] = "1"

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "bandofbakers.toml"
PG_ADMIN_URL = os.environ.get(
    "ROTATOR_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point rotator at a fresh state directory and database; no keys yet."""
    home = tmp_path / "state"
    monkeypatch.setenv("ROTATOR_HOME", str(home))
    for var in ("ROTATOR_DATABASE_URL", "ROTATOR_MASTER_KEY", "ROTATOR_MASTER_KEY_FILE",
                "ROTATOR_INVENTORY"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ROTATOR_ACTOR", "tester@test")
    return home


@pytest.fixture
def keys(state_dir: Path) -> Path:
    from rotator.keys import init_keys

    init_keys()
    return state_dir / "keys"


def _pg_reachable() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL.replace("+psycopg", ""), connect_timeout=3):
            return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]


@pytest.fixture
def pg_url() -> Iterator[str]:
    """Create a uniquely named PostgreSQL database for one test and drop it after."""
    problem = _pg_reachable()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is unreachable under CI=true: {problem}")
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is unreachable ({problem}); CI runs these")
    import psycopg

    name = f"rotator_test_{uuid.uuid4().hex[:12]}"
    admin = PG_ADMIN_URL.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def _clock_not_leaked() -> Iterator[None]:
    """Give back the clock a test found: a simulated year must not leak into the next test
    (a provider's signed JWT then carries the wrong time and Google refuses it)."""
    from rotator import clock

    before = clock._source
    yield
    clock._source = before
