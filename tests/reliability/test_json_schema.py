"""Every command's `--json` matches the versioned schema in `rotator.json_output`.

Driven against a standalone `rotate sandbox` of its own (the prepared states share one
sandbox, and this test rotates), on 2027-01-01 02:30 London, the first day of a cycle.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from rotator.cli import app
from rotator.json_output import SCHEMAS, WITHOUT_JSON

RESEND = "BANDOFBAKERS_RESEND_API_KEY"
TYPES = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "object": dict,
    "array": list,
    "null": type(None),
}


def problems(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Check `value` against the JSON Schema subset `rotator.json_output` uses."""
    found: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: {value!r} not in {schema['enum']}")
    kinds = schema.get("type")
    if kinds is not None:
        names = kinds if isinstance(kinds, list) else [kinds]
        ok = any(
            isinstance(value, TYPES[n]) and not (n in ("integer", "number") and value is True)
            for n in names
        )
        if not ok or (isinstance(value, bool) and "boolean" not in names):
            return [*found, f"{where}: {type(value).__name__}, expected {names}"]
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                found.append(f"{where}: missing {key!r}")
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                found += problems(value[key], sub, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += problems(item, schema["items"], f"{where}[{i}]")
    return found


def _commands(group: Any, prefix: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found |= _commands(command, f"{prefix}{name} ")
        else:
            found[f"{prefix}{name}"] = command
    return found


def test_every_command_has_json_with_a_schema_or_says_why_not() -> None:
    commands = _commands(typer.main.get_command(app))
    missing = []
    for name, command in commands.items():
        has_json = any("--json" in getattr(p, "opts", []) for p in command.params)
        if has_json and name not in SCHEMAS:
            missing.append(f"{name}: --json without a schema")
        if not has_json and name not in WITHOUT_JSON:
            missing.append(f"{name}: no --json and no reason in WITHOUT_JSON")
    assert not missing, missing


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, str]]:
    workdir = tmp_path / "sandbox"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rotator", "sandbox", "--port", "0", "--faults", "none",
         "--workdir", str(workdir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    seen: dict[str, str] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("a complete inventory: "):
            seen["inventory"] = line.split(": ", 1)[1].strip()
        elif line.startswith("the seeded values"):
            seen["values"] = line.split(": ", 1)[1].strip()
        elif line.startswith("stop with Ctrl-C"):
            break
    env = {
        **os.environ,
        "ROTATOR_HOME": str(tmp_path / "state"),
        "ROTATOR_INVENTORY": seen["inventory"],
        "ROTATOR_SANDBOX_CLOUDFLARE_TOKEN": (workdir / "cloudflare-token").read_text(),
        "ROTATOR_SANDBOX_ROLLBAR_TOKEN": (workdir / "rollbar-token").read_text(),
        "ROTATOR_SANDBOX_LOGFLARE_KEY": (workdir / "logflare-key").read_text(),
        "ROTATOR_FAKE_TIME": "2027-01-01T02:30:00+00:00",
        "ROTATOR_NO_DELAY": "1",
        "SEEDED": seen["values"],
    }
    try:
        yield env
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_each_commands_json_matches_its_schema(world: dict[str, str]) -> None:
    def rotate(*args: str, input: str | None = None, real_time: bool = False) -> Any:
        # `import` checks the reference with the provider: Google's token exchange needs
        # the real time, which is the standalone sandbox's time too.
        env = {k: v for k, v in world.items() if not (real_time and k == "ROTATOR_FAKE_TIME")}
        done = subprocess.run(
            [sys.executable, "-m", "rotator", *args, "--json"],
            input=input, capture_output=True, text=True, env=env, check=False, timeout=300,
        )  # fmt: skip
        assert done.returncode in (0, 1), (args, done.stdout, done.stderr)
        return json.loads(done.stdout)

    checked: dict[str, Any] = {}
    checked["init"] = rotate("init")
    for line in Path(world["SEEDED"]).read_text().splitlines():
        label, ref, value = line.split("\t")
        secret, _, scope = label.partition("@")
        checked["import"] = rotate(
            "import",
            secret,
            "--ref",
            ref,
            *(["--env", scope] if scope else []),
            input=value,
            real_time=True,
        )
    checked["check"] = rotate("check")
    checked["db upgrade"] = rotate("db", "upgrade")
    checked["run"] = rotate("run")
    checked["status"] = rotate("status")
    checked["plan"] = rotate("plan")
    checked["show"] = rotate("show", RESEND)
    checked["calendar"] = rotate("calendar", "--year", "2027")
    checked["providers"] = rotate("providers")
    checked["approve"] = rotate("approve", RESEND, "--note", "schema test")
    checked["abort"] = rotate("abort", RESEND, "--reason", "schema test", "--yes")
    checked["audit verify"] = rotate("audit", "verify")
    checked["audit export"] = rotate(
        "audit", "export", str(Path(world["ROTATOR_HOME"]) / "x.jsonl")
    )
    assert checked["run"], "the first day of a cycle should do something"
    assert checked["abort"][0]["status"] in ("done", "person")
    found = []
    for name, value in checked.items():
        found += [f"{name}: {p}" for p in problems(value, SCHEMAS[name])]
    assert not found, found
