"""Issue 19: `rotate status` reads a SQLite file with sqlite3 alone, and says the same."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from ops_world import closed_port_url, ops_world

from rotator import commands
from rotator.store.status import read_status

STRIPE = "BANDOFBAKERS_STRIPE_SECRET_KEY"


def test_the_sqlite3_read_gives_the_rows_of_the_full_path(state_dir: Path, tmp_path: Path) -> None:
    """Person states, failed notifications, ages: identical; a validated rotation defers."""
    with ops_world(
        tmp_path, start=date(2027, 1, 1), webhook_url=closed_port_url(), notify_email=False
    ) as world:
        compared = deferred = 0
        days = [date(2027, 1, 1), date(2027, 1, 2), date(2027, 2, 1), date(2027, 3, 2)]
        for day in [*days, date(2027, 3, 2) + timedelta(days=1)]:
            world.at(day)
            engine = world.engine()
            engine.run()
            engine.checkpoint()
            full = commands.status(engine)
            fast = read_status(engine.rt.inventory, engine.rt.clock())
            if fast is None:
                # Only a rotation whose next step needs the machine's facts takes the full path.
                assert any(r["state"] == "validated" for row in full for r in row["rotations"])
                deferred += 1
                continue
            assert fast == full, day
            compared += 1
            stripe = next(r for r in fast if r["secret"] == STRIPE)
            assert stripe["rotations"] and stripe["rotations"][0]["needs_person"]
            assert any(row["notification_failures"] for row in fast)
        assert compared >= 1 and deferred >= 1, (compared, deferred)


def test_no_file_or_another_url_takes_the_full_path(state_dir: Path, tmp_path: Path) -> None:
    from rotator import clock
    from rotator import inventory as inv_mod
    from tests.conftest import EXAMPLE

    inv = inv_mod.load(EXAMPLE)
    assert read_status(inv, clock.now()) is None  # no database yet: the full path creates it
    assert read_status(inv, clock.now(), "postgresql://u@h/db") is None
    assert read_status(inv, clock.now(), "sqlite:///:memory:") is None

    import sqlite3

    from rotator.store.db import open_store
    from rotator.store.location import database_url

    open_store().dispose()  # a current schema: read with sqlite3
    assert read_status(inv, clock.now()) is not None
    db = sqlite3.connect(database_url()[len("sqlite:///") :])
    with db:
        db.execute("UPDATE alembic_version SET version_num = '0002'")
    db.close()
    assert read_status(inv, clock.now()) is None  # another schema: the full path upgrades it


def test_the_state_name_is_the_repository_s() -> None:
    from rotator import repository
    from rotator.store import status

    assert status.CURRENT == repository.CURRENT


def test_run_prints_each_pending_person_step_with_its_window_and_command(
    state_dir: Path, tmp_path: Path, capsys
) -> None:
    """Issue 19: after a command leaves a person's step pending: the step, when, the command."""
    from rotator import cli

    with ops_world(tmp_path, start=date(2027, 1, 1), notify_email=False) as world:
        world.at(date(2027, 1, 1))
        engine = world.engine()
        outcomes = engine.run()
        capsys.readouterr()
        cli.pending_steps(engine, outcomes)
        out = capsys.readouterr().out
        world.at(date(2027, 3, 2))
        engine = world.engine()
        cli.pending_steps(engine, engine.run())
        march = capsys.readouterr().out
    assert f"{STRIPE}: a person is needed (awaiting-supply)" in out, out
    assert "due in month 1 of cycle 2027-01, before month 2 opens 2027-02-01 00:00 GMT" in out
    assert "   rotate supply BANDOFBAKERS_STRIPE_SECRET_KEY" in out
    assert "rotate supply GOOGLE_CLIENT_SECRET --env staging" in out
    resend = "BANDOFBAKERS_RESEND_API_KEY: a person is needed (validated)"
    assert resend in march, march
    assert "production moves in a maintenance window of month 3 (" in march
    assert "run rotate approve BANDOFBAKERS_RESEND_API_KEY" in march
