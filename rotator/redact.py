"""Scrub every value this process has held or sent out of text that leaves it.

Key *shapes* miss most credentials (Resend, GCP, Google OAuth and Cloudflare values have
no reliable prefix), so redaction is by value: each `Secret` registers its value when it
is built, and `scrub` replaces the value, and its base64, URL-encoded and JSON-escaped
forms, wherever they appear. Text from a provider, a target or a hook (error bodies,
messages) passes through `scrub` before it reaches output, logs, `last_error` or the trail.

The registry lives as long as the process, as the `Secret` objects it mirrors usually do;
values shorter than `MIN_LENGTH` are not registered, since scrubbing them would mangle
ordinary words and no credential of ours is that short.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = [
    "MIN_LENGTH",
    "REDACTED",
    "ScrubFilter",
    "forget_all",
    "install_logging",
    "register",
    "scrub",
    "scrub_json",
]

REDACTED = "[REDACTED]"
MIN_LENGTH = 8

_lock = threading.Lock()
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None


def _forms(value: str) -> set[str]:
    raw = value.encode("utf-8")
    forms = {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(raw).decode("ascii")
        forms |= {text, text.rstrip("=")}
    forms.add(json.dumps(value, ensure_ascii=True)[1:-1])
    return {f for f in forms if len(f) >= MIN_LENGTH}


def register(value: str) -> None:
    """Remember `value` so that `scrub` removes it, in any common encoding, from now on."""
    global _pattern
    if not isinstance(value, str) or len(value) < MIN_LENGTH:
        return
    with _lock:
        if value in _values:
            return
        _values.add(value)
        _pattern = None


def forget_all() -> None:
    """Empty the registry (for tests that need a process with nothing held)."""
    global _pattern
    with _lock:
        _values.clear()
        _pattern = None


def _compiled() -> re.Pattern[str] | None:
    global _pattern
    pattern = _pattern
    if pattern is not None or not _values:
        return pattern
    with _lock:
        forms: set[str] = set()
        for value in _values:
            forms |= _forms(value)
        # Longest first, so a value's base64 is not cut short by a shorter value inside it.
        alternatives = sorted(forms, key=len, reverse=True)
        pattern = re.compile("|".join(re.escape(f) for f in alternatives))
        _pattern = pattern
    return pattern


def scrub(text: str) -> str:
    """Return `text` with every registered value (and its encodings) replaced by `REDACTED`."""
    pattern = _compiled()
    if pattern is None or not text:
        return text
    return pattern.sub(REDACTED, text)


def scrub_json(value: Any) -> Any:
    """Return a copy of plain JSON data with every string scrubbed (keys included)."""
    if isinstance(value, str):
        return scrub(value)
    if _pattern is None and not _values:
        return value
    if isinstance(value, Mapping):
        return {(scrub(k) if isinstance(k, str) else k): scrub_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_json(item) for item in value]
    return value


def _without_query(arg: Any) -> Any:
    """An `httpx.URL` argument without its query (a GCP key travels as `?key=`).

    The message is formatted here, at the record's creation, before any logger's own
    filter (`providers.http`'s URL redaction) could see the URL. Duck-typed: importing
    httpx here would slow every command's start-up.
    """
    if type(arg).__name__ == "URL" and hasattr(arg, "raw_path") and hasattr(arg, "scheme"):
        port = f":{arg.port}" if getattr(arg, "port", None) else ""
        return f"{arg.scheme}://{arg.host}{port}{arg.path}"
    return arg


def _scrub_record(record: logging.LogRecord) -> None:
    if isinstance(record.args, tuple):
        record.args = tuple(_without_query(a) for a in record.args)
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: keep the record, drop its arguments
        message = str(record.msg)
    record.msg = scrub(message)
    record.args = None
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        record.exc_info = None


class ScrubFilter(logging.Filter):
    """Scrub held values out of every log record passing the handler it is attached to."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _values:
            _scrub_record(record)
        return True


_installed = False


def install_logging() -> None:
    """Scrub every log record of the process as it is created, whichever logger made it.

    A record factory reaches records of every logger and handler (the last-resort handler
    too), which filters attached to a few named loggers would not.
    """
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if _values:
            _scrub_record(record)
        return record

    logging.setLogRecordFactory(factory)
