"""Every command of `rotate` is documented and has help text (the docs are tested)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer

from rotator.cli import app

ROOT = Path(__file__).resolve().parents[2]


def _commands() -> list[tuple[str, Any]]:
    """Return every command and group below `rotate`, as ("audit verify", command)."""
    # Typer vendors click (typer._click), so groups are recognised by what they can do.
    found: list[tuple[str, Any]] = []

    def walk(group: Any, prefix: str) -> None:
        ctx = typer.Context(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None
            path = f"{prefix} {name}".strip()
            found.append((path, command))
            if hasattr(command, "list_commands"):
                walk(command, path)

    root = typer.main.get_command(app)
    assert hasattr(root, "list_commands")
    walk(root, "")
    return found


def _docs_text() -> str:
    files = sorted((ROOT / "docs").glob("*.md"))
    readme = ROOT / "README.md"
    if readme.exists():
        files.append(readme)
    return "\n".join(f.read_text() for f in files)


COMMANDS = _commands()


def test_the_walk_finds_the_commands() -> None:
    names = {path for path, _ in COMMANDS}
    assert {"run", "emergency", "supply", "confirm", "status", "db upgrade"} <= names


@pytest.mark.parametrize("path, command", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_command_has_help(path: str, command: Any) -> None:
    text = (command.help or command.short_help or "").strip()
    assert text, f"rotate {path} has no help text"


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS])
def test_every_command_appears_in_the_docs(path: str) -> None:
    pattern = rf"rotate {re.escape(path)}(?![\w-])"
    assert re.search(pattern, _docs_text()), f"`rotate {path}` appears in no docs/*.md or README"
