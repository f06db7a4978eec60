"""Locate the state directory, the key files and the default SQLite database."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    """Return `$ROTATOR_HOME`, else `$XDG_STATE_HOME/rotator`, else `~/.local/state/rotator`."""
    home = os.environ.get("ROTATOR_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "rotator"


def keys_dir() -> Path:
    return state_dir() / "keys"


def default_database_path() -> Path:
    return state_dir() / "rotator.db"


def inventory_path(explicit: str | None = None) -> Path:
    """Return the inventory given, else `$ROTATOR_INVENTORY`, else `<state>/inventory.toml`."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("ROTATOR_INVENTORY")
    if env:
        return Path(env).expanduser()
    return state_dir() / "inventory.toml"
