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


# ---------------------------------------------------------------------- distribution
# pytest-xdist runs with `--dist loadgroup --no-loadscope-reorder` (pyproject): items go to
# the workers in the order below, and an `xdist_group` goes whole to one worker.

# Modules whose tests all read one expensive module-scoped world: run on one worker, so
# that world is built once, not once per worker.
GROUPED = (
    "tests/sequences/test_sequence_year.py",  # a year of daily runs
    "tests/reliability/test_crash_emergency.py",  # the dry runs of both emergencies
)

# The longest items, longest first (measured on 2 cores; docs/performance.md "Test suite
# wall time"). Started first, so that no worker begins a two-minute test while the other
# has nothing left to do. Whole modules, or single tests that use no module fixture.
SLOW_FIRST = (
    "tests/reliability/test_crash_quarterly.py",
    "tests/reliability/test_crash_emergency.py",
    "tests/reliability/test_leak_canary.py::test_demo_year_and_emergency_leak_nothing",
    "tests/sequences/test_sequence_year.py",
    "tests/sequences/test_failure_model.py",
    "tests/e2e/test_e2e_failure_paths.py::test_rollback_of_an_operator_assisted_rotation",
    "tests/e2e/test_e2e_failure_paths.py::test_operator_assisted_emergency_rolled_back",
    "tests/e2e/test_e2e_cli.py::test_full_quarterly_cycle_of_all_four_secrets",
    "tests/e2e/test_e2e_failure_paths.py::test_emergency_with_production_failing",
    "tests/sequences/test_sequence_properties.py",
    "tests/e2e/test_e2e_concurrency.py",
    "tests/reliability/test_crash_own_cloudflare.py",
    "tests/reliability/test_concurrency_runners.py",
    "tests/e2e/test_e2e_own_credentials.py",
    "tests/e2e/test_e2e_signals.py",
    "tests/e2e/",
    "tests/reliability/test_faults_profiles.py",
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Group the modules of GROUPED and put the items of SLOW_FIRST first, in that order."""

    def rank(item: pytest.Item) -> int:
        return next(
            (i for i, prefix in enumerate(SLOW_FIRST) if item.nodeid.startswith(prefix)),
            len(SLOW_FIRST),
        )

    for item in items:
        module = item.nodeid.split("::", 1)[0]
        if module in GROUPED:
            item.add_marker(pytest.mark.xdist_group(module.rsplit("/", 1)[-1]))
    items.sort(key=rank)
