"""`rotate demo` explains itself: a legend, a table per secret, where its state is, what next."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.foundation.cli_helpers import ROTATE, rotate


def test_demo_prints_legend_table_state_and_three_next_commands(tmp_path: Path) -> None:
    done = rotate("demo", "--fast", env={"TMPDIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "How to read the lines below" in out and "OUTCOME" in out
    assert re.search(r"^SECRET +CYCLES DONE +SUPERSEDED +EMERGENCIES$", out, re.M)
    assert re.search(r"^BANDOFBAKERS_RESEND_API_KEY +\d+ +\d+ +1$", out, re.M)
    state = re.search(r"state is kept in (\S+) \(database, keys\)", out)
    assert state and Path(state.group(1)).is_dir()
    export = re.search(r"^  export (ROTATOR_HOME=\S+) (ROTATOR_INVENTORY=\S+)$", out, re.M)
    assert export
    env = {**os.environ, **dict(kv.split("=", 1) for kv in export.groups())}
    commands = re.findall(r"^  (rotate [^#\n]+?)\s+#", out, re.M)
    assert len(commands) == 3, commands
    for command in commands:
        ran = subprocess.run(
            [*ROTATE, *command.split()[1:]], env=env, capture_output=True, text=True, check=False
        )
        assert ran.returncode == 0, (command, ran.stderr)
