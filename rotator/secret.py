"""Hold a secret value so that it cannot be printed, logged or serialised by accident.

`Secret` is deliberately not a `str`: `repr`, `str`, `format` and the JSON encoder of this
module show a mask, pickling is refused, and the value comes out only through
`reveal()`, so every place that handles the clear value is visible in a code search.
"""

from __future__ import annotations

import hmac
import json
from typing import Any, NoReturn

from rotator.redact import register

MASK = "**********"


class Secret:
    """A secret value; masked everywhere, revealed only by an explicit call."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError("Secret takes a str")
        self._value = value
        # Every value the process holds is scrubbed from text that leaves it (by value,
        # since most credentials have no recognisable shape).
        register(value)

    def reveal(self) -> str:
        """Return the clear value. Every caller is a place where the value may leak."""
        return self._value

    def reveal_bytes(self) -> bytes:
        return self._value.encode("utf-8")

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")

    def __getstate__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")


class MaskingJSONEncoder(json.JSONEncoder):
    """Encode `Secret` as the mask, so `--json` output can never carry a value."""

    def default(self, o: Any) -> Any:
        if isinstance(o, Secret):
            return MASK
        return super().default(o)


def read_secret_input(text: str) -> Secret:
    """Turn text from a prompt or stdin into a `Secret`, refusing what cannot be a credential.

    One trailing newline (from `echo` or a pipe) is dropped; anything else that is empty,
    only whitespace, multi-line or padded with spaces is refused rather than guessed at.
    """
    from rotator.errors import BadInputError

    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise BadInputError("the supplied value is empty; paste the credential and try again")
    if not text.strip():
        raise BadInputError("the supplied value is only whitespace; paste the credential itself")
    if "\n" in text or "\r" in text:
        raise BadInputError(
            "the supplied value spans several lines; a credential is one line: paste only it"
        )
    if text != text.strip():
        raise BadInputError(
            "the supplied value starts or ends with spaces; paste the credential without them"
        )
    return Secret(text)
