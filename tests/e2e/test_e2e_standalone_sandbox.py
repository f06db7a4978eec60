"""`rotate sandbox` alone, driven by the documented commands with the overrides it prints."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

RESEND = "BANDOFBAKERS_RESEND_API_KEY"


def _start(workdir: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rotator", "sandbox", "--port", "0", "--faults", "none",
         "--workdir", str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    seen: dict[str, str] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("sandbox listening on "):
            seen["base"] = line.split()[3]
        elif line.startswith("a complete inventory: "):
            seen["inventory"] = line.split(": ", 1)[1].strip()
        elif line.startswith("the seeded values"):
            seen["values"] = line.split(": ", 1)[1].strip()
        elif line.startswith("export "):
            # Every credential of the inventory: `export NAME="$(cat FILE)"` (issue 15 added
            # Rollbar's and Logflare's tokens beside Cloudflare's).
            seen["export"] = seen.get("export", "") + line.strip() + "\n"
        elif line.startswith("[providers.resend]"):
            seen["overrides"] = "yes"
        elif line.startswith("stop with Ctrl-C"):
            break
    return proc, seen


def test_standalone_sandbox_driven_by_the_cli(tmp_path: Path) -> None:
    proc, seen = _start(tmp_path / "sandbox")
    try:
        assert {"base", "inventory", "values", "export", "overrides"} <= set(seen), seen
        exported = {}
        for line in seen["export"].splitlines():
            name, _, rest = line.split(maxsplit=1)[1].partition("=")
            exported[name] = Path(rest.split("cat ", 1)[1].rstrip(')"')).read_text()
        token = (tmp_path / "sandbox" / "cloudflare-token").read_text()
        assert exported["ROTATOR_SANDBOX_CLOUDFLARE_TOKEN"] == token
        env = {
            **os.environ,
            "ROTATOR_HOME": str(tmp_path / "state"),
            "ROTATOR_INVENTORY": seen["inventory"],
            **exported,
        }

        def rotate(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "rotator", *args],
                input=input, capture_output=True, text=True, env=env, check=False, timeout=300,
            )  # fmt: skip

        assert rotate("init").returncode == 0
        for line in Path(seen["values"]).read_text().splitlines():
            label, ref, value = line.split("\t")
            secret, _, scope = label.partition("@")
            args = ["import", secret, "--ref", ref] + (["--env", scope] if scope else [])
            done = rotate(*args, input=value + "\n")
            assert done.returncode == 0, done.stderr
        assert rotate("check").returncode == 0
        done = rotate("emergency", RESEND, "--reason", "standalone drill", "--yes")
        assert done.returncode == 0, done.stdout + done.stderr
        history = httpx.get(seen["base"] + "/sandbox/health-history", timeout=10).json()
        production = [h for h in history["history"] if h["env"] == "production"]
        assert production and all(h["ok"] for h in production), production
        assert rotate("audit", "verify").returncode == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
