"""Help with examples for every command, completion of secret names, the announced delay."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import typer

from rotator.cli import app
from tests.conftest import EXAMPLE
from tests.foundation.cli_helpers import ROTATE


def _commands(group: Any, prefix: str = "") -> list[tuple[str, Any]]:
    found = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found += _commands(command, f"{prefix}{name} ")
        else:
            found.append((f"{prefix}{name}", command))
    return found


def test_every_command_has_examples_in_its_help() -> None:
    root = typer.main.get_command(app)
    missing = []
    for name, command in _commands(root):
        if "Examples:" not in (command.help or "") or "rotate " not in (command.help or ""):
            missing.append(name)
    assert not missing, missing


def test_secret_names_complete_from_the_inventory(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "_ROTATE_COMPLETE": "complete_bash",
        "COMP_WORDS": "rotate supply BANDOFBAKERS_S",
        "COMP_CWORD": "2",
        "ROTATOR_INVENTORY": str(EXAMPLE),
    }
    done = subprocess.run(ROTATE, env=env, capture_output=True, text=True, check=False)
    assert done.stdout.split() == ["BANDOFBAKERS_STRIPE_SECRET_KEY"], done.stderr


def test_run_announces_its_random_delay_on_stderr(state_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ROTATOR_NO_DELAY"}
    proc = subprocess.Popen(
        [*ROTATE, "run", "-i", str(EXAMPLE)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
    finally:
        proc.kill()
        proc.wait()
    assert line.startswith("waiting ") and "--no-delay" in line, line


def test_run_no_delay_starts_at_once(state_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ROTATOR_NO_DELAY"}
    started = time.monotonic()
    done = subprocess.run(
        [*ROTATE, "run", "--no-delay", "-i", str(EXAMPLE)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, check=False,
        timeout=120,
    )  # fmt: skip
    assert "waiting" not in done.stderr
    assert time.monotonic() - started < 60


def test_help_is_quick_and_loads_no_database_layer() -> None:
    code = (
        "import sys, time\n"
        "t = time.perf_counter()\n"
        "sys.argv = ['rotate', '--help']\n"
        "from rotator import cli\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', [m for m in ('sqlalchemy', 'sqlmodel') if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in done.stdout
