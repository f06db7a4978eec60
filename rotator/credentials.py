"""Fetch the tool's own credentials from where the inventory says, never from its text."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from rotator.errors import KeyMaterialError
from rotator.inventory import CredentialRef
from rotator.keys import check_private
from rotator.secret import Secret

logger = logging.getLogger(__name__)


def _differs(path: Path, held: Secret) -> bool:
    try:
        return path.read_bytes() != held.reveal_bytes()
    except OSError:
        return True


class InventoryCredentials:
    """Resolve `[credentials]` entries: the store first (`rotate credentials import`, own
    rotations), else an environment variable or a 0600 file."""

    def __init__(
        self,
        refs: Mapping[str, CredentialRef],
        base_dir: Path,
        stored: Callable[[str], Secret | None] | None = None,
    ) -> None:
        self._refs = refs
        self._base = base_dir
        # Reads the store's current value of an own credential (rotator.own.store); read
        # at every use, so a rotation by another process is picked up at the next call.
        self._stored = stored

    def _ref(self, name: str) -> CredentialRef:
        ref = self._refs.get(name)
        if ref is None:
            raise KeyMaterialError(
                f"the inventory does not say where the credential {name!r} comes from; "
                f'add [credentials] {name} = {{ env = "VAR" }} or {{ file = "/path" }}'
            )
        return ref

    def path(self, name: str, *, synced: bool = True) -> Path:
        """Return the file `name` is read from, first brought up to the store's value.

        The store holds the current value once the tool imported or rotated it. A host
        whose file still has an older one (another host rotated the key, or a crash came
        between recording a new key and writing the file) gets the store's value written
        over it here, so every use reads the value the tool switched to.
        """
        ref = self._ref(name)
        if ref.file is None:
            raise KeyMaterialError(
                f"credential {name!r} must be a file ({{ file = ... }}), not an env variable"
            )
        path = Path(ref.file).expanduser()
        if not path.is_absolute():
            path = self._base / path
        check_private(path)
        if synced and self._stored is not None:
            held = self._stored(name)
            if held is not None and _differs(path, held):
                from rotator.safefile import write_private

                write_private(path, held.reveal())
                logger.info("credential %s: its file now holds the store's current value", name)
        return path

    def secret(self, name: str) -> Secret:
        self._ref(name)  # an unknown name is refused before the store is read
        if self._stored is not None:
            held = self._stored(name)
            if held is not None:
                return held
        return self.configured(name)

    def configured(self, name: str) -> Secret:
        """Return the value from the environment variable or file the inventory names."""
        ref = self._ref(name)
        if ref.env is not None:
            value = os.environ.get(ref.env)
            if not value:
                raise KeyMaterialError(
                    f"credential {name!r}: the environment variable {ref.env} is not set"
                )
            return Secret(value.strip())
        # Not synced: for a token the store holds, the file keeps what a person put there.
        return Secret(self.path(name, synced=False).read_text().strip())

    def source(self, name: str, *, stored: bool) -> str:
        """Say where `name` comes from now (for `rotate check`): the store, a variable or a file."""
        ref = self._ref(name)
        if stored:
            return "the store (imported or rotated by the tool; encrypted)"
        if ref.env is not None:
            return f"environment variable {ref.env}"
        return f"file {ref.file}"

    def missing(self) -> list[str]:
        """Name every credential that cannot be found now (for `rotate check`)."""
        problems = []
        for name in self._refs:
            try:
                if self._refs[name].env is not None:
                    self.secret(name)
                else:
                    self.path(name, synced=False)
            except KeyMaterialError as exc:
                problems.append(str(exc))
        return problems
