"""Run the `rotate` CLI as a subprocess, the way a user or cron does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROTATE = [sys.executable, "-m", "rotator"]


def rotate(
    *args: str, input: str | None = None, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ROTATE, *args],
        input=input,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=300,
        check=False,
    )
