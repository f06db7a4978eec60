"""Leak canary: no value the sandbox issued appears anywhere the tool writes or hands on.

Part one walks the demo year and its emergency in-process with every logger at DEBUG,
then reads the result with the CLI (`--json` status, show, plan, audit log, an audit
export). Part two drives a prepared state with forced errors (a refused command, a
rejected supply) and an emergency whose notification is a command hook that dumps its
argv and environment. Each part then looks for every issued value in: captured output,
the log file, the SQLite file and its -wal, the audit export and the hook's dump.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.conftest import GOOGLE, RESEND, STRIPE, Case, expect

HOOK = """\
import json, os, sys
with open(sys.argv[1], "a") as out:
    out.write(json.dumps({"argv": sys.argv, "env": dict(os.environ), "stdin": sys.stdin.read()}))
    out.write("\\n")
"""


def issued_values(sandbox: Any) -> dict[str, str]:
    """Every credential the sandbox holds, its Cloudflare token and service-account key."""
    values = credential_values(sandbox)
    values["cloudflare token"] = sandbox.cloudflare_token
    pem = sandbox.world.service_account.key_file(sandbox.token_url)["private_key"]
    body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    for i in range(0, len(body) - 64, 64):  # any 64-character run of the key's body
        values[f"service-account key body {i}"] = body[i : i + 64]
    return {k: v for k, v in values.items() if v}


def credential_values(sandbox: Any) -> dict[str, str]:
    """The credentials the sandbox holds now (a revoked one may be forgotten by it)."""
    world = sandbox.world
    values: dict[str, str] = {}
    for k in world.resend.keys.values():
        values[f"resend {k.id}"] = k.token
    for k in world.stripe.keys.values():
        values[f"stripe {k.id}"] = k.secret
    for k in world.apikeys.keys.values():
        values[f"apikey {k.name}"] = k.key_string
    for client in world.google.clients.values():
        for s in client.secrets.values():
            values[f"oauth {client.client_id} {s.id}"] = s.value
    return values


def find_leaks(values: dict[str, str], places: dict[str, bytes]) -> list[str]:
    leaks = []
    for where, data in places.items():
        for name, value in values.items():
            if value.encode() in data:
                leaks.append(f"{name} in {where}")
    return leaks


def _files(*paths: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in paths if p.exists()}


@pytest.fixture
def debug_log(tmp_path: Path) -> Any:
    log = tmp_path / "debug.log"
    root = logging.getLogger()
    handler = logging.FileHandler(log)
    handler.setLevel(logging.DEBUG)
    saved = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield log
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)
        handler.close()


def test_demo_year_and_emergency_leak_nothing(
    tmp_path: Path, debug_log: Path, capfd: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    from rotator.demo import run_demo
    from tests.foundation.cli_helpers import rotate

    end = date(2027, 12, 31)
    values: dict[str, str] = {}
    lines: list[str] = []
    work = tmp_path / "demo"

    def collect(day: date, sandbox: Any) -> None:
        # Every day: the sandbox forgets a credential once it is deleted.
        values.update(issued_values(sandbox) if not values else credential_values(sandbox))

    result = run_demo(end=end, faults="none", echo=lines.append, workdir=work, on_day=collect)
    assert result.verified and result.production_health_ok and result.emergencies == 1
    assert len([k for k in values if k.startswith("resend")]) >= 5  # a year of rotations

    home, inventory = work / "state", work / "world" / "inventory.toml"
    monkeypatch.setenv("ROTATOR_HOME", str(home))
    monkeypatch.setenv("ROTATOR_INVENTORY", str(inventory))
    outputs = []
    export = tmp_path / "export.jsonl"
    for args in (
        ["status", "--json"],
        ["show", RESEND, "--json"],
        ["show", GOOGLE, "--env", "production", "--json"],
        ["plan", "--at", "2028-01-05T02:30", "--json"],
        ["audit", "log", "--json"],
        ["audit", "export", str(export)],
        ["review", STRIPE, "--note", "too early"],  # refused
    ):
        done = rotate(*args)
        assert done.returncode in (0, 4), (args, done.stderr)
        outputs += [done.stdout, done.stderr]
    captured = capfd.readouterr()
    places = {
        "demo timeline": "\n".join(lines).encode(),
        "captured stdout/stderr": (captured.out + captured.err).encode(),
        "CLI output": "\n".join(outputs).encode(),
        **_files(debug_log, home / "rotator.db", home / "rotator.db-wal", export),
    }
    assert debug_log.stat().st_size > 0
    assert export.stat().st_size > 0
    assert find_leaks(values, places) == []


def _with_hook(case: Case, dump: Path) -> None:
    script = case.root / "hook.py"
    script.write_text(HOOK)
    text = case.inventory.read_text()
    hook = f'{{ kind = "command", command = "{sys.executable} {script} {dump}" }}'
    assert "channels = []" in text
    case.inventory.write_text(text.replace("channels = []", f"channels = [{hook}]"))


def _forced_errors(case: Case, dump: Path) -> list[str]:
    _with_hook(case, dump)
    expect(case, "supply", RESEND, code=4, message="refused:", refused=True, input="x\n")
    sandbox = case.state.sandbox
    test_key = sandbox.world.stripe.create("secret", False, sandbox.world.now()).secret
    expect(case, "supply", STRIPE, code=7, message="test-mode key", input=test_key + "\n")
    staging = case.state.seeded[f"{GOOGLE}@staging"].value  # another environment's value
    expect(
        case,
        "supply",
        GOOGLE,
        "--env",
        "production",
        code=4,
        message="the current credential of staging",
        refused=True,
        input=staging + "\n",
    )
    done = case.rotate("emergency", RESEND, "--reason", "canary", "--yes", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    outputs = [done.stdout, done.stderr]
    for args in (["status", "--json"], ["show", RESEND, "--json"], ["audit", "log", "--json"]):
        outputs.append(case.rotate(*args).stdout)
    assert dump.exists(), "the command hook did not run"
    return outputs


def _sqlite_files(case: Case) -> dict[str, bytes]:
    return _files(case.db, case.db.with_name("rotator.db-wal"))


def test_forced_errors_and_emergency_leak_nothing(q1: Case, tmp_path: Path) -> None:
    dump = tmp_path / "hook.jsonl"
    _forced_errors(q1, dump)
    export = tmp_path / "export.jsonl"
    assert q1.rotate("audit", "export", str(export)).returncode == 0
    hooks = [json.loads(line) for line in dump.read_text().splitlines()]
    values = issued_values(q1.state.sandbox)
    places = {
        "CLI output": "\n".join(q1.outputs).encode(),
        "hook argv and stdin": json.dumps([[h["argv"], h["stdin"]] for h in hooks]).encode(),
        # The hook's environment is its own minimal one, never rotator's (which holds
        # the Cloudflare token variable).
        **{f"hook environment {i}": json.dumps(h["env"]).encode() for i, h in enumerate(hooks)},
        **_sqlite_files(q1),
        **_files(export),
    }
    assert find_leaks(values, places) == []
