"""Fetch the tool's own credentials from where the inventory says, never from its text."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from rotator.errors import KeyMaterialError
from rotator.inventory import CredentialRef
from rotator.keys import check_private
from rotator.secret import Secret


class InventoryCredentials:
    """Resolve `[credentials]` entries: an environment variable or a 0600 file."""

    def __init__(self, refs: Mapping[str, CredentialRef], base_dir: Path) -> None:
        self._refs = refs
        self._base = base_dir

    def _ref(self, name: str) -> CredentialRef:
        ref = self._refs.get(name)
        if ref is None:
            raise KeyMaterialError(
                f"the inventory does not say where the credential {name!r} comes from; "
                f'add [credentials] {name} = {{ env = "VAR" }} or {{ file = "/path" }}'
            )
        return ref

    def path(self, name: str) -> Path:
        ref = self._ref(name)
        if ref.file is None:
            raise KeyMaterialError(
                f"credential {name!r} must be a file ({{ file = ... }}), not an env variable"
            )
        path = Path(ref.file).expanduser()
        if not path.is_absolute():
            path = self._base / path
        check_private(path)
        return path

    def secret(self, name: str) -> Secret:
        ref = self._ref(name)
        if ref.env is not None:
            value = os.environ.get(ref.env)
            if not value:
                raise KeyMaterialError(
                    f"credential {name!r}: the environment variable {ref.env} is not set"
                )
            return Secret(value.strip())
        return Secret(self.path(name).read_text().strip())

    def missing(self) -> list[str]:
        """Name every credential that cannot be found now (for `rotate check`)."""
        problems = []
        for name in self._refs:
            try:
                if self._refs[name].env is not None:
                    self.secret(name)
                else:
                    self.path(name)
            except KeyMaterialError as exc:
                problems.append(str(exc))
        return problems
