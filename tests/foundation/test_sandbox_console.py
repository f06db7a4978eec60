"""`rotate sandbox` says how to import its values and act as the person; the console works."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.foundation.cli_helpers import rotate


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[tuple[dict[str, str], list[str]]]:
    workdir = tmp_path / "sandbox"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rotator", "sandbox", "--port", "0", "--faults", "none",
         "--workdir", str(workdir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    lines: list[str] = []
    seen: dict[str, str] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("sandbox listening on "):
            seen["url"] = line.split()[3]
        elif line.startswith("a complete inventory: "):
            seen["inventory"] = line.split(": ", 1)[1].strip()
        elif line.startswith("export ROTATOR_SANDBOX_CLOUDFLARE_TOKEN"):
            seen["token"] = (workdir / "cloudflare-token").read_text()
        elif line.startswith("stop with Ctrl-C"):
            break
    try:
        yield seen, lines
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_sandbox_prints_the_import_loop_and_console_commands_that_work(
    sandbox: tuple[dict[str, str], list[str]], tmp_path: Path
) -> None:
    seen, lines = sandbox
    text = "\n".join(lines)
    assert "rotate sandbox console stripe new-key | rotate supply" in text
    assert "rotate sandbox console google new-secret --env staging" in text
    # Run the printed import loop exactly as a person pastes it.
    start = next(
        i for i, line in enumerate(lines) if line.strip().startswith("export ROTATOR_INVENTORY")
    )
    end = next(i for i, line in enumerate(lines) if line.strip().startswith("done < "))
    script = "\n".join(line.strip() for line in lines[start : end + 1])
    env = {
        **os.environ,
        "ROTATOR_HOME": str(tmp_path / "state"),
        "ROTATOR_SANDBOX_CLOUDFLARE_TOKEN": seen["token"],
    }
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    done = subprocess.run(
        ["bash", "-c", "set -e\n" + script],
        capture_output=True, text=True, env=env, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("recorded as current") == 6, done.stdout

    url = {"ROTATOR_SANDBOX_URL": seen["url"]}
    made = rotate("sandbox", "console", "stripe", "new-key", env=url)
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("sk_live_") and made.stdout.count("\n") == 1
    assert made.stderr.startswith("created Stripe key ")
    listed = rotate("sandbox", "console", "stripe", "keys", env=url)
    assert listed.stdout.count("id=") == 2 and "sk_live_" not in listed.stdout.replace(
        "redacted=sk_live_", ""
    )
    added = rotate(
        "sandbox", "console", "google", "new-secret", "--env", "staging",
        "-i", seen["inventory"], env=url,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() and added.stderr.startswith("added secret ")
    typo = rotate(
        "sandbox", "console", "google", "new-secret", "--env", "stagin",
        "-i", seen["inventory"], env=url,
    )  # fmt: skip
    assert typo.returncode == 2 and "did you mean 'staging'" in typo.stderr
    expired = rotate("sandbox", "console", "stripe", "expire-old", env=url)
    assert expired.returncode == 0 and expired.stdout.count("expired Stripe key") == 1
    # Issue 15: a credential that breaks a Server Action shows up as errors, not health.
    raised = rotate(
        "sandbox", "console", "signals", "error-rate", "--env", "production", "--rate", "0.05",
        env=url,
    )  # fmt: skip
    assert raised.returncode == 0, raised.stderr
    assert raised.stdout.startswith("production: error rate 5.00% since ")
    down = rotate("sandbox", "console", "signals", "outage", "rollbar", env=url)
    assert down.returncode == 0 and down.stdout.strip() == "rollbar: down"
    wrong = rotate(
        "sandbox", "console", "signals", "error-rate", "--env", "prod", "--rate", "0.05", env=url
    )
    assert wrong.returncode == 7 and "no environment 'prod'" in wrong.stderr
    # Each credential of the sandbox inventory has its own file and export line.
    assert "export ROTATOR_SANDBOX_ROLLBAR_TOKEN=" in text
    workdir = Path(seen["inventory"]).parent
    tokens = {f: (workdir / f).read_text() for f in ("cloudflare-token", "rollbar-token")}
    assert tokens["cloudflare-token"] == seen["token"] != tokens["rollbar-token"]


def test_console_without_a_sandbox_says_how_to_start_one() -> None:
    done = rotate(
        "sandbox", "console", "stripe", "new-key", env={"ROTATOR_SANDBOX_URL": "http://127.0.0.1:9"}
    )
    assert done.returncode == 7
    assert "start `rotate sandbox`" in done.stderr and done.stdout == ""


def test_sandbox_workdir_that_cannot_be_written_names_it(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = rotate("sandbox", "--port", "0", "--workdir", str(blocker / "sub"))
    assert done.returncode == 2, done.stderr
    assert str(blocker / "sub") in done.stderr and "--workdir" in done.stderr
    assert "internal error" not in done.stderr


def test_an_emergency_without_a_channel_does_not_claim_it_notified(
    sandbox: tuple[dict[str, str], list[str]], tmp_path: Path
) -> None:
    seen, _ = sandbox
    env = {
        "ROTATOR_HOME": str(tmp_path / "state"),
        "ROTATOR_INVENTORY": seen["inventory"],
        "ROTATOR_SANDBOX_CLOUDFLARE_TOKEN": seen["token"],
        "ROTATOR_PROGRESS": "1",
    }
    assert "channels = []" in Path(seen["inventory"]).read_text()
    assert rotate("init", env=env).returncode == 0
    values = Path(seen["inventory"]).parent / "seeded-values.txt"
    for line in values.read_text().splitlines():
        label, ref, value = line.split("\t")
        if label == "BANDOFBAKERS_RESEND_API_KEY":
            done = rotate("import", label, "--ref", ref, input=value, env=env)
            assert done.returncode == 0, done.stderr
    done = rotate("emergency", "BANDOFBAKERS_RESEND_API_KEY", "--reason", "drill", "--yes", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "notify ok" not in done.stderr
    assert "notify skipped (no channel" in done.stderr
