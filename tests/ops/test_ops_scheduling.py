"""The scheduling examples are valid: systemd units, the crontab line, the CI workflow."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
INSTALLED_ROTATE = "/opt/rotator/.venv/bin/rotate"
FIELD_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def _crontab_lines() -> list[str]:
    text = (EXAMPLES / "cron" / "rotator.crontab").read_text()
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _field_ok(field: str, low: int, high: int) -> bool:
    for part in field.split(","):
        base, _, step = part.partition("/")
        if step and not step.isdigit():
            return False
        if base == "*":
            continue
        bounds = base.split("-")
        if not all(b.isdigit() and low <= int(b) <= high for b in bounds) or len(bounds) > 2:
            return False
    return True


def test_the_crontab_runs_rotate_run_daily_at_0230_london() -> None:
    lines = _crontab_lines()
    settings = [line for line in lines if re.match(r"^[A-Z_]+=", line)]
    jobs = [line for line in lines if line not in settings]
    assert settings == ["CRON_TZ=Europe/London"]
    ZoneInfo(settings[0].split("=", 1)[1])
    assert len(jobs) == 1, jobs
    fields = jobs[0].split(None, 5)
    assert len(fields) == 6, "five time fields and a command"
    for field, (low, high) in zip(fields[:5], FIELD_RANGES, strict=True):
        assert _field_ok(field, low, high), field
    assert fields[:5] == ["30", "2", "*", "*", "*"]
    assert re.search(r"/rotate run\b", fields[5])


def test_the_readme_shows_the_crontab_lines() -> None:
    readme = ROOT / "README.md"
    assert readme.exists(), "README.md must show the crontab of examples/cron/rotator.crontab"
    shown = readme.read_text().splitlines()
    for line in _crontab_lines():
        assert line in shown, f"README.md does not show the crontab line: {line}"


def _rotate_executable() -> str:
    found = Path(sys.executable).parent / "rotate"
    return str(found) if found.exists() else (shutil.which("rotate") or sys.executable)


@pytest.fixture
def systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here; CI hosts with systemd run this")
    return tool


def test_the_systemd_units_verify(systemd_analyze: str, tmp_path: Path) -> None:
    for name in ("rotator.service", "rotator.timer"):
        text = (EXAMPLES / "systemd" / name).read_text()
        # verify checks that ExecStart= exists: point it at this checkout's rotate.
        (tmp_path / name).write_text(text.replace(INSTALLED_ROTATE, _rotate_executable()))
    done = subprocess.run(
        [systemd_analyze, "verify", "./rotator.service", "./rotator.timer"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    ours = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if "rotator.service" in line or "rotator.timer" in line
    ]
    assert done.returncode == 0, done.stdout + done.stderr
    assert ours == [], "\n".join(ours)  # unknown keys are only warnings: refuse them too


def test_the_timer_fires_at_0230_london(systemd_analyze: str) -> None:
    text = (EXAMPLES / "systemd" / "rotator.timer").read_text()
    (spec,) = re.findall(r"^OnCalendar=(.+)$", text, re.M)
    assert spec == "*-*-* 02:30 Europe/London"
    done = subprocess.run(
        [systemd_analyze, "calendar", spec], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Normalized form: *-*-* 02:30:00 Europe/London" in done.stdout
    assert re.search(r"^RandomizedDelaySec=\S+", text, re.M)


def test_the_service_is_a_hardened_oneshot_without_a_second_delay() -> None:
    text = (EXAMPLES / "systemd" / "rotator.service").read_text()
    hardening = ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes")
    for setting in ("Type=oneshot", "Environment=ROTATOR_NO_DELAY=1", *hardening):
        assert re.search(rf"^{re.escape(setting)}$", text, re.M), setting
    assert re.search(rf"^ExecStart={re.escape(INSTALLED_ROTATE)} run\b", text, re.M)


def test_the_ci_workflow_is_scheduled_and_takes_values_from_the_secret_store() -> None:
    # PyYAML is not a dependency: the shape is checked on the text.
    text = (EXAMPLES / "ci" / "rotate.yml").read_text()
    assert re.search(r'^on:\n  schedule:\n(    #.*\n)*    - cron: "30 2 \* \* \*"$', text, re.M)
    assert re.search(r"^        run: rotate run\b", text, re.M)
    for name in ("ROTATOR_MASTER_KEY", "ROTATOR_DATABASE_URL", "CLOUDFLARE_API_TOKEN"):
        assert re.search(rf"^      {name}: \$\{{\{{ secrets\.{name} \}}\}}$", text, re.M), name
    assert "\t" not in text
    # No literal credential of any provider the tool rotates.
    assert re.search(r"(sk|rk)_(live|test)_|re_[A-Za-z0-9]{10}|AIza|GOCSPX-", text) is None
