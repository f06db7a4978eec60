"""The first commands end to end: init, check, import, status, rewrap, --help start-up."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE
from tests.foundation.cli_helpers import rotate

CANARY = "re_CANARY_d41d8cd98f00b204e9800998ecf8427e"


def test_help_and_version_do_not_import_sqlalchemy_httpx_or_cryptography() -> None:
    code = (
        "import sys\n"
        "from rotator.cli import app\n"
        "for argv in (['--help'], ['--version']):\n"
        "    try:\n"
        "        app(argv, prog_name='rotate', standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "names = ('sqlalchemy', 'sqlmodel', 'httpx', 'cryptography')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY=\n" in done.stdout, done.stdout
    assert "Usage: rotate" in done.stdout


def test_version(state_dir: Path) -> None:
    done = rotate("--version")
    assert done.returncode == 0 and done.stdout.startswith("rotate ")


def test_init_then_check_offline(state_dir: Path) -> None:
    assert rotate("init").returncode == 0
    again = rotate("init")
    assert again.returncode == 5 and "refusing to overwrite" in again.stderr
    done = rotate("check", "--offline", "-i", str(EXAMPLE))
    assert done.returncode == 0, done.stderr
    assert "valid" in done.stdout


def test_check_reports_three_problems(state_dir: Path, tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    text = text.replace('soak = "24h"', 'soakk = "24h"', 1)
    text = text.replace('time_zone = "Europe/London"', 'time_zone = "Europe/Londn"', 1)
    text = text.replace('provider = "stripe"\n', "", 1)
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    done = rotate("check", "--offline", "-i", str(bad))
    assert done.returncode == 3
    assert "3 problem(s)" in done.stderr
    for path in (
        "settings.soakk",
        "settings.time_zone",
        "secrets.BANDOFBAKERS_STRIPE_SECRET_KEY.provider",
    ):
        assert path in done.stderr


def test_import_status_and_canary(state_dir: Path) -> None:
    rotate("init")
    imported = rotate(
        "import",
        "--no-verify",
        "BANDOFBAKERS_RESEND_API_KEY",
        "-i",
        str(EXAMPLE),
        input=CANARY + "\n",
    )
    assert imported.returncode == 0, imported.stderr
    status = rotate("status", "--json", "-i", str(EXAMPLE))
    assert status.returncode == 0, status.stderr
    rows = {(r["secret"], r["scope"]): r for r in json.loads(status.stdout)}
    assert rows[("BANDOFBAKERS_RESEND_API_KEY", "shared")]["current"] is True
    assert rows[("BANDOFBAKERS_STRIPE_SECRET_KEY", "shared")]["current"] is False
    human = rotate("status", "-i", str(EXAMPLE))
    # The canary appears in no output and in no byte of any file under the state directory.
    for out in (imported.stdout, imported.stderr, status.stdout, status.stderr, human.stdout):
        assert CANARY not in out
    for path in state_dir.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path
    db = state_dir / "rotator.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    twice = rotate(
        "import",
        "--no-verify",
        "BANDOFBAKERS_RESEND_API_KEY",
        "-i",
        str(EXAMPLE),
        input="re_other\n",
    )
    assert twice.returncode == 4 and "already has a current value" in twice.stderr


def test_import_refuses_bad_values_and_names(state_dir: Path) -> None:
    rotate("init")
    empty = rotate(
        "import", "--no-verify", "BANDOFBAKERS_RESEND_API_KEY", "-i", str(EXAMPLE), input="\n"
    )
    assert empty.returncode == 2 and "empty" in empty.stderr
    unknown = rotate("import", "--no-verify", "RESEND", "-i", str(EXAMPLE), input="x\n")
    assert unknown.returncode == 2 and "unknown secret 'RESEND'" in unknown.stderr
    no_env = rotate(
        "import", "--no-verify", "GOOGLE_CLIENT_SECRET", "-i", str(EXAMPLE), input="x\n"
    )
    assert no_env.returncode == 2 and "--env" in no_env.stderr


def _credentials_env(tmp_path: Path) -> dict[str, str]:
    sa = tmp_path / "sa.json"
    sa.write_text("{}")
    os.chmod(sa, 0o600)
    inv = tmp_path / "inv.toml"
    inv.write_text(EXAMPLE.read_text().replace("/etc/rotator/gcp-service-account.json", str(sa)))
    return {"CLOUDFLARE_API_TOKEN": "cf", "ROTATOR_NOTIFY_RESEND_KEY": "re", "INV": str(inv)}


def test_moved_database_needs_the_old_key_then_rewrap(state_dir: Path, tmp_path: Path) -> None:
    rotate("init")
    env = _credentials_env(tmp_path)
    inv = env.pop("INV")
    assert (
        rotate(
            "import", "--no-verify", "BANDOFBAKERS_RESEND_API_KEY", "-i", inv, input="re_1\n"
        ).returncode
        == 0
    )
    assert rotate("check", "-i", inv, env=env).returncode == 0
    old_key = state_dir / "keys" / "master.key"
    moved = tmp_path / "old-master.key"
    moved.write_bytes(old_key.read_bytes())
    os.chmod(moved, 0o600)
    old_key.unlink()
    new_dir = tmp_path / "newkeys"
    from rotator.keys import init_keys

    init_keys(new_dir)
    env["ROTATOR_MASTER_KEY_FILE"] = str(new_dir / "master.key")
    refused = rotate("check", "-i", inv, env=env)
    assert refused.returncode == 5, refused.stderr
    assert "master key id" in refused.stderr and "rewrap" in refused.stderr
    rewrapped = rotate("keys", "rewrap", "--old-key-file", str(moved), env=env)
    assert rewrapped.returncode == 0, rewrapped.stderr
    assert "re-encrypted 1" in rewrapped.stdout
    assert rotate("check", "-i", inv, env=env).returncode == 0


def test_unexpected_error_prints_one_line(state_dir: Path, tmp_path: Path) -> None:
    (state_dir).mkdir(parents=True, exist_ok=True)
    done = rotate("calendar", "--year", "99999999999", "-i", str(EXAMPLE))
    assert done.returncode in (2, 70)
    assert "Traceback" not in done.stderr


@pytest.mark.postgres
def test_postgres_old_schema_is_refused_until_upgrade(state_dir: Path, pg_url: str) -> None:
    rotate("init")
    env = {"ROTATOR_DATABASE_URL": pg_url}
    refused = rotate("status", "-i", str(EXAMPLE), env=env)
    assert refused.returncode == 6
    assert "rotate db upgrade" in refused.stderr
    assert rotate("db", "upgrade", env=env).returncode == 0
    assert rotate("status", "-i", str(EXAMPLE), env=env).returncode == 0
    imported = rotate(
        "import",
        "--no-verify",
        "BANDOFBAKERS_RESEND_API_KEY",
        "-i",
        str(EXAMPLE),
        input="re_pg\n",
        env=env,
    )
    assert imported.returncode == 0, imported.stderr


def test_providers_lists_the_four_with_capabilities(state_dir: Path) -> None:
    done = rotate("providers")
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split()[1:5] for line in done.stdout.splitlines()[1:]}
    assert rows["resend"] == ["auto", "auto", "yes", "-"]
    assert rows["gcp-identity"] == ["auto", "auto", "yes", "-"]
    assert rows["stripe"] == ["person", "person", "yes", "-"]
    assert rows["google-oauth"] == ["person", "person", "yes", "2"]
    listed = json.loads(rotate("providers", "--json").stdout)
    assert {p["name"] for p in listed} == {"resend", "stripe", "gcp-identity", "google-oauth"}


def test_status_imports_neither_httpx_nor_cryptography(state_dir: Path) -> None:
    rotate("init")
    code = (
        "import sys\n"
        "from rotator.cli import app\n"
        f"argv = ['status', '-i', {str(EXAMPLE)!r}]\n"
        "try:\n"
        "    app(argv, prog_name='rotate', standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('HEAVY=' + ','.join(m for m in ('httpx', 'cryptography') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY=\n" in done.stdout, done.stdout + done.stderr


def test_status_on_a_current_sqlite_file_loads_no_database_layer(state_dir: Path) -> None:
    """Issue 19: `rotate status` reads SQLite with sqlite3 alone (~0.3 s less start-up)."""
    rotate("init")
    imported = rotate(
        "import",
        "--no-verify",
        "BANDOFBAKERS_RESEND_API_KEY",
        "-i",
        str(EXAMPLE),
        input="re_fast_status\n",
    )
    assert imported.returncode == 0, imported.stderr
    full = rotate("status", "--json", "-i", str(EXAMPLE))
    code = (
        "import sys\n"
        f"sys.argv = ['rotate', 'status', '--json', '-i', {str(EXAMPLE)!r}]\n"
        "from rotator import cli\n"
        "try:\n    cli.main()\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
        "names = ('sqlalchemy', 'sqlmodel', 'alembic')\n"
        "print('HEAVY=' + ','.join(m for m in names if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY=\n" in done.stdout, done.stdout + done.stderr
    rows = json.loads(done.stdout[: done.stdout.rindex("HEAVY=")])
    assert rows == json.loads(full.stdout)
    resend = next(r for r in rows if r["secret"] == "BANDOFBAKERS_RESEND_API_KEY")
    assert resend["current"] is True and resend["age_days"] == 0.0


def _tokyo_inventory(tmp_path: Path) -> str:
    text = EXAMPLE.read_text().replace('time_zone = "Europe/London"', 'time_zone = "Asia/Tokyo"')
    path = tmp_path / "tokyo.toml"
    path.write_text(text)
    return str(path)


def test_show_and_audit_log_print_times_in_the_inventory_zone(
    state_dir: Path, tmp_path: Path
) -> None:
    """docs/inventory.md: times are stored in UTC and shown in the inventory's zone."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    inv = _tokyo_inventory(tmp_path)
    rotate("init")
    imported = rotate(
        "import", "--no-verify", "BANDOFBAKERS_RESEND_API_KEY", "-i", inv, input="re_tz\n"
    )
    assert imported.returncode == 0, imported.stderr
    data = json.loads(rotate("show", "BANDOFBAKERS_RESEND_API_KEY", "-i", inv, "--json").stdout)
    created = datetime.fromisoformat(data["versions"][0]["created_at"])
    assert created.utcoffset() is not None and created.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    local = created.astimezone(ZoneInfo("Asia/Tokyo"))
    shown = rotate("show", "BANDOFBAKERS_RESEND_API_KEY", "-i", inv)
    assert shown.returncode == 0, shown.stderr
    assert f"created {local:%Y-%m-%d %H:%M:%S} JST" in shown.stdout, shown.stdout
    log = rotate("audit", "log", "-i", inv)
    assert log.returncode == 0, log.stderr
    assert f"{local:%Y-%m-%d %H:%M}" in log.stdout and " JST " in log.stdout, log.stdout
    entries = [json.loads(line) for line in rotate("audit", "log", "--json").stdout.splitlines()]
    assert all(e["time"].endswith("Z") for e in entries)  # UTC in JSON


def test_local_time_reads_stored_utc_forms() -> None:
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from rotator.cli import local_time

    tokyo = ZoneInfo("Asia/Tokyo")
    assert local_time(None, tokyo) == "-"
    assert local_time("2027-01-01T02:30:00.000001Z", tokyo) == "2027-01-01 11:30 JST"
    assert local_time("2027-01-01T02:30:05+00:00", tokyo, seconds=True) == "2027-01-01 11:30:05 JST"
    assert (
        local_time(datetime(2027, 7, 1, 1, 0), ZoneInfo("Europe/London")) == "2027-07-01 02:00 BST"
    )
    assert local_time(datetime(2027, 7, 1, 1, 0, tzinfo=UTC), UTC) == "2027-07-01 01:00 UTC"


def _sink_inventory(tmp_path: Path, sink: Path) -> str:
    text = EXAMPLE.read_text().replace(
        'external_sink = "audit-checkpoints.log"', f'external_sink = "{sink}"'
    )
    path = tmp_path / "sink.toml"
    path.write_text(text)
    return str(path)


def test_import_with_an_unusable_sink_records_nothing(state_dir: Path, tmp_path: Path) -> None:
    """Issue 19: the sink is checked before the value is written, so exit 9 is true."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    inv = _sink_inventory(tmp_path, blocker / "audit-checkpoints.log")
    rotate("init")
    done = rotate(
        "import", "--no-verify", "BANDOFBAKERS_RESEND_API_KEY", "-i", inv, input="re_sink\n"
    )
    assert done.returncode == 9, done.stderr
    assert str(blocker / "audit-checkpoints.log") in done.stderr
    assert "nothing was recorded" in done.stderr, done.stderr
    status = json.loads(rotate("status", "--json", "-i", inv).stdout)
    resend = next(r for r in status if r["secret"] == "BANDOFBAKERS_RESEND_API_KEY")
    assert resend["current"] is False
    log = rotate("audit", "log", "--json", "--type", "credential.imported")
    assert log.stdout.strip() == ""


def test_import_whose_sink_copy_fails_after_the_commit_says_it_was_recorded(
    state_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import errno
    import io

    from audit import checkpoint
    from rotator import cli
    from rotator.keys import init_keys

    init_keys()
    inv = _sink_inventory(tmp_path, tmp_path / "sink" / "audit-checkpoints.log")

    def full_disk(path: Path, body: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(checkpoint, "append_to_sink", full_disk)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"re_recorded\n")))
    monkeypatch.setattr(
        sys, "argv", ["rotate", "import", "--no-verify", "BANDOFBAKERS_RESEND_API_KEY", "-i", inv]
    )
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    err = capsys.readouterr().err
    assert exit_.value.code == 9, err
    assert "WAS recorded as current" in err and "do not import it again" in err, err
    assert "No space left on device" in err, err
    status = json.loads(rotate("status", "--json", "-i", inv).stdout)
    resend = next(r for r in status if r["secret"] == "BANDOFBAKERS_RESEND_API_KEY")
    assert resend["current"] is True
