"""Locate the state directory, the key files and the default SQLite database.

`state_dir()` only names the directory; `private_state_dir()` and `keys_dir()` also create
it 0700 and refuse one that another user owns or can write (see `rotator.safefile`).
"""

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


def private_state_dir() -> Path:
    """Return the state directory, created 0700 and checked: ours, and no one else's to write."""
    from rotator.safefile import ensure_private_dir

    return ensure_private_dir(state_dir())


def keys_dir() -> Path:
    """Return `<state>/keys` after checking the state directory and, if it exists, `keys/`."""
    from rotator.safefile import check_private_dir

    keys = private_state_dir() / "keys"
    check_private_dir(keys, "keys directory")
    return keys


def default_database_path() -> Path:
    return private_state_dir() / "rotator.db"


def inventory_path(explicit: str | None = None) -> Path:
    """Return the inventory given, else `$ROTATOR_INVENTORY`, else `<state>/inventory.toml`."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("ROTATOR_INVENTORY")
    if env:
        return Path(env).expanduser()
    return state_dir() / "inventory.toml"
