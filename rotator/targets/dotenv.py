"""Publish values to a dotenv file (`.env.local`) for the local environment.

Options: `path` (required) and `base_dir` (optional). A relative `path` is resolved
against `base_dir` from the options, else `urls["base_dir"]` (the engine passes the
inventory's directory there), else the current directory.

The file is edited, not rewritten from scratch: lines of other variables, comments, blank
lines, their order and the `export NAME=` form are kept; the assignment of each published
name is replaced in place (every assignment, if the name appears more than once) and
names not yet in the file are appended at the end. Values that are not plain tokens are
written in double quotes with `\\`, `"`, `$` and line breaks escaped, the form that
python-dotenv and Next.js (dotenv + dotenv-expand) read back unchanged.

The new content goes to a temporary file in the same directory, created 0600, flushed to
disk, then renamed over the old file, so a crash leaves either the old file or the new one,
never half of one, and never a stray temporary file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from rotator.errors import OutputFileError, TargetConfigError, TargetError
from rotator.secret import Secret
from rotator.targets.base import Target

_ASSIGNMENT = re.compile(r"^(?P<lead>\s*(?:export\s+)?)(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)\s*=")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLAIN = re.compile(r"^[A-Za-z0-9_./:@+,=%^~-]*$")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "$": "\\$", "\n": "\\n", "\r": "\\r"}


def quote(value: str) -> str:
    """Return `value` as it is written after `NAME=`: bare if plain, else double-quoted."""
    if value and _PLAIN.match(value):
        return value
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in value) + '"'


def _value_end(lines: list[str], start: int, after_equals: str) -> int:
    """Return the index of the last line of the value that begins at `lines[start]`.

    A quoted value may span lines; replacing only its first line would leave the rest of
    the old value (possibly the old secret) behind as garbage lines.
    """
    text = after_equals.lstrip()
    if not text or text[0] not in "\"'":
        return start
    quote_char = text[0]
    rest = text[1:]
    index = start
    while True:
        escaped = False
        for ch in rest:
            if escaped:
                escaped = False
            elif ch == "\\" and quote_char == '"':
                escaped = True
            elif ch == quote_char:
                return index
        index += 1
        if index >= len(lines):
            # An unterminated quote: treat it as one line rather than swallow the file.
            return start
        rest = lines[index]


def render(original: str, values: Mapping[str, str]) -> str:
    """Return `original` with `values` assigned, everything else kept as it was."""
    lines = original.splitlines(keepends=True)
    out: list[str] = []
    seen: set[str] = set()
    index = 0
    while index < len(lines):
        line = lines[index]
        match = _ASSIGNMENT.match(line)
        if match is None or match["name"] not in values:
            out.append(line)
            index += 1
            continue
        name = match["name"]
        end = _value_end(lines, index, line[match.end() :])
        ending = "\r\n" if lines[end].endswith("\r\n") else "\n"
        out.append(f"{match['lead']}{name}={quote(values[name])}{ending}")
        seen.add(name)
        index = end + 1
    missing = [name for name in values if name not in seen]
    if missing and out and not out[-1].endswith("\n"):
        out[-1] += "\n"
    out.extend(f"{name}={quote(values[name])}\n" for name in missing)
    return "".join(out)


def write_atomically(path: Path, content: str) -> None:
    """Replace `path` with `content` so that readers see the old file or the new, mode 0600.

    rename(2) over the path: a link planted there would be replaced, never written
    through. Raises `OutputFileError` naming the path when it cannot be written.
    """
    from rotator.safefile import write_output

    write_output(path, content.encode("utf-8"), mode=0o600)


class DotenvTarget(Target):
    """Write values into a dotenv file, atomically and readable by its owner only."""

    kind: ClassVar[str] = "dotenv"
    required_options: ClassVar[Mapping[str, str]] = {
        "path": "the dotenv file to write, e.g. .env.local (relative to the inventory)",
    }
    optional_options: ClassVar[Mapping[str, str]] = {
        "base_dir": "the directory a relative path is resolved against",
    }

    @classmethod
    def check_values(cls, options: Mapping[str, Any]) -> Iterable[str]:
        base_dir = options.get("base_dir")
        if base_dir is not None and not isinstance(base_dir, str):
            yield "base_dir: must be a string"

    @property
    def path(self) -> Path:
        """Return the file this target writes, resolved against the inventory's directory."""
        path = Path(os.path.expanduser(str(self.options["path"])))
        if not path.is_absolute():
            base = self.options.get("base_dir") or self.urls.get("base_dir") or os.getcwd()
            path = Path(base) / path
        return path

    def _write_path(self) -> Path:
        """Return the file to replace: the path, or its link's target if both are ours.

        A link of our own (`.env.local -> ../shared.env`) is written through, as before.
        A link another local user planted is refused: following it would hand them the
        live value, or overwrite a file of root's.
        """
        path = self.path
        if not path.is_symlink():
            return path
        uid = os.geteuid()
        real = Path(os.path.realpath(path))
        link_owner = path.lstat().st_uid
        real_owner = real.stat().st_uid if real.exists() else real.parent.stat().st_uid
        if link_owner != uid or real_owner != uid or real.is_symlink():
            raise TargetConfigError(
                f"{self.describe()}: {path} is a symbolic link to {real} that another user "
                f"owns (link uid {link_owner}, file uid {real_owner}, you are uid {uid}); "
                "rotator does not write a secret through it. Remove the link after checking "
                f"who made it, or point environments.{self.environment}.targets at a file "
                "of your own"
            )
        return real

    def describe(self) -> str:
        return f"dotenv {self.options['path']}"

    def publish(self, values: Mapping[str, Secret]) -> None:
        """Set each variable in the file; other lines stay as they were."""
        bad = [name for name in values if not _NAME.match(name)]
        if bad:
            raise TargetError(
                f"{self.describe()}: cannot write variable name(s) {', '.join(map(repr, bad))}; "
                "a dotenv name is letters, digits and underscores"
            )
        if not values:
            return
        path = self._write_path()
        if not path.parent.is_dir():
            raise TargetConfigError(
                f"{self.describe()}: directory {path.parent} does not exist; fix "
                f"environments.{self.environment}.targets in the inventory or create it"
            )
        try:
            # Bytes, not read_text: universal newlines would turn CRLF files into LF ones.
            original = path.read_bytes().decode("utf-8") if path.exists() else ""
        except (OSError, UnicodeDecodeError) as exc:
            raise TargetError(
                f"{self.describe()}: cannot read {path} ({type(exc).__name__})"
            ) from None
        content = render(original, {name: value.reveal() for name, value in values.items()})
        try:
            write_atomically(path, content)
        except OutputFileError as exc:
            raise TargetError(f"{self.describe()}: {exc}; the file was left as it was") from None
