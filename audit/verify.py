"""Verify an exported audit trail offline, with only the standard library and `cryptography`.

This module imports nothing from rotator or the rest of `audit`, so an auditor can copy
this one file and run `python verify.py EXPORT --public-key KEY.pem` without the tool, its
database or its secrets. It is also the single home of the chain formula and of the
signed-note parser, which the writing side imports from here.

The export is read as a stream: memory holds a handful of recent entries, not the trail.
Entries are hashed as the bytes stored; only `seq` and `prev` are extracted, by a fast
path that relies on the canonical form (sorted keys, so both are the last top-level
occurrences of their keys), with `json` as the fallback.

Coverage is part of the proof: entries that no valid signed checkpoint covers make the
trail invalid (unless the caller accepts an unsigned tail explicitly), and a trail with
no valid checkpoint, or no entry, is never valid. A sink that is named but missing,
empty, unreadable, a symlink, not a regular file or behind the trail fails it too; the
sink is read in bounded records, so a device such as `/dev/full` cannot exhaust memory.

Exit codes: 0 valid, 1 invalid, 2 usage or I/O error.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import itertools
import json
import os
import stat
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ENTRY_DOMAIN_TAG = b"rotator-audit-entry-v1\x00"
ZERO_HASH = "0" * 64
EXPORT_FORMAT = "rotator-audit-export"
EXPORT_VERSION = 1
SINK_RECORD_PREFIX = b"rotator-checkpoint "
CHECKPOINT_LINE_PREFIX = b'{"checkpoint":'
SIGNATURE_PREFIX = "\u2014 "
ED25519_SIGNATURE_TYPE = b"\x01"

NO_SINK_WARNING = "no external checkpoint copy given: a truncated tail cannot be detected"
# A signed note is a few hundred bytes; anything far larger is not one of ours.
MAX_NOTE_BYTES = 64 * 1024
_MAX_SINK_HEADER = len(SINK_RECORD_PREFIX) + 24

_ZERO = bytes(32)
_PREV_KEY = b',"prev":"'
_SEQ_KEY = b',"seq":'
_ENTRY_START = b'{"actor":'
_ENTRY_END = b',"v":1}'
_MAX_RUN = 1000
_sha256 = hashlib.sha256
_unhex = binascii.unhexlify


def entry_hash(prev_hex: str, stored: bytes) -> str:
    """Return the hex chain hash of an entry: SHA-256(tag || prev || stored bytes)."""
    return _sha256(ENTRY_DOMAIN_TAG + bytes.fromhex(prev_hex) + stored).hexdigest()


# --- signed notes and checkpoints (https://c2sp.org/signed-note, tlog-checkpoint) ---------


class CheckpointError(ValueError):
    """A checkpoint note is malformed or carries no valid signature by the given key."""


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a signed note."""

    name: str
    key_hash: bytes
    signature: bytes


@dataclass(frozen=True)
class Checkpoint:
    """A parsed checkpoint: `text` is the signed note body, the bytes the signature covers."""

    origin: str
    size: int
    head_hash: str
    prev: str | None
    text: bytes
    signatures: tuple[NoteSignature, ...]

    @property
    def text_hash(self) -> str:
        """Return the hex SHA-256 of the body, which the next checkpoint's `prev` names."""
        return hashlib.sha256(self.text).hexdigest()


def note_key_hash(name: str, public_key: Ed25519PublicKey) -> bytes:
    """Return the 4-byte signed-note key hash of an Ed25519 key under `name`."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    digest = hashlib.sha256(name.encode() + b"\n" + ED25519_SIGNATURE_TYPE + raw).digest()
    return digest[:4]


def _strict_b64(text: str | bytes, what: str) -> bytes:
    # b64decode ignores the spare bits of the last character; insisting on the canonical
    # encoding means that no byte of a note or an export line can change unnoticed.
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CheckpointError(f"{what} is not base64") from exc
    encoded = text.encode() if isinstance(text, str) else text
    if base64.b64encode(raw) != encoded:
        raise CheckpointError(f"{what} is not canonical base64")
    return raw


def _b64_32(text: str, what: str) -> bytes:
    raw = _strict_b64(text, what)
    if len(raw) != 32:
        raise CheckpointError(f"{what} is not a 32-byte hash")
    return raw


def parse_checkpoint(note: bytes) -> Checkpoint:
    """Parse a signed checkpoint note without checking its signatures."""
    cut = note.rfind(b"\n\n")
    if cut < 0 or not note.endswith(b"\n"):
        raise CheckpointError("not a signed note (no blank line before the signatures)")
    text, sig_block = note[: cut + 1], note[cut + 2 :]
    try:
        lines = text.decode("utf-8").split("\n")[:-1]
        sig_lines = sig_block.decode("utf-8").split("\n")[:-1]
    except UnicodeDecodeError as exc:
        raise CheckpointError("note is not UTF-8") from exc
    if len(lines) < 3:
        raise CheckpointError("checkpoint body needs origin, size and hash lines")
    origin, size_text, head_text = lines[0], lines[1], lines[2]
    if not origin or not size_text.isdigit() or (size_text != "0" and size_text[0] == "0"):
        raise CheckpointError("bad origin or size line")
    prev: str | None = None
    for extra in lines[3:]:
        if extra.startswith("prev "):
            prev = _b64_32(extra[5:], "prev").hex()
    signatures = []
    for line in sig_lines:
        if not line.startswith(SIGNATURE_PREFIX):
            raise CheckpointError("bad signature line")
        name, _, b64 = line[len(SIGNATURE_PREFIX) :].rpartition(" ")
        blob = _strict_b64(b64, "signature")
        if not name or len(blob) < 5:
            raise CheckpointError("bad signature line")
        signatures.append(NoteSignature(name, blob[:4], blob[4:]))
    if not signatures:
        raise CheckpointError("note carries no signature")
    head = _b64_32(head_text, "head hash").hex()
    return Checkpoint(origin, int(size_text), head, prev, text, tuple(signatures))


def verify_checkpoint(
    note: bytes, public_key: Ed25519PublicKey, key_name: str | None = None
) -> Checkpoint:
    """Parse a checkpoint and check that `public_key` signed it; raise `CheckpointError` if not.

    Signatures by other keys are ignored, as the signed-note spec asks; `key_name`, when
    given, also pins the name the signature must carry.
    """
    checkpoint = parse_checkpoint(note)
    for sig in checkpoint.signatures:
        if key_name is not None and sig.name != key_name:
            continue
        if sig.key_hash != note_key_hash(sig.name, public_key):
            continue
        try:
            public_key.verify(sig.signature, checkpoint.text)
        except InvalidSignature:
            continue
        return checkpoint
    raise CheckpointError("bad signature")


def read_sink(stream: BinaryIO) -> Iterator[bytes]:
    """Yield the checkpoint notes of an external sink file, in the order written."""
    while True:
        # Bounded reads: a sink that is a device or garbage must not grow memory or hang.
        header = stream.readline(_MAX_SINK_HEADER)
        if not header:
            return
        if not header.startswith(SINK_RECORD_PREFIX) or not header.endswith(b"\n"):
            raise CheckpointError("sink record header is malformed")
        try:
            length = int(header[len(SINK_RECORD_PREFIX) : -1])
        except ValueError as exc:
            raise CheckpointError("sink record length is malformed") from exc
        if not 0 < length <= MAX_NOTE_BYTES:
            raise CheckpointError(f"sink record length {length} is out of range")
        note = stream.read(length)
        if len(note) != length or stream.read(1) != b"\n":
            raise CheckpointError("sink record is truncated")
        yield note


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One finding: which entry or checkpoint, why, and where it sits in the input."""

    subject: str
    number: int | None
    reason: str
    detail: str = ""

    def line(self) -> str:
        """Return the one-line form printed by the command line."""
        who = f"{self.subject} {self.number}" if self.number is not None else self.subject
        tail = f" ({self.detail})" if self.detail else ""
        return f"{who} INVALID: {self.reason}{tail}"


@dataclass
class VerifyResult:
    """The outcome of a verification; `ok` is true only when no problem was found."""

    entries_total: int = 0
    entries_valid: int = 0
    checkpoints_total: int = 0
    checkpoints_valid: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems_omitted: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems and not self.problems_omitted

    def summary(self) -> str:
        """Return the closing summary line."""
        return (
            f"{self.entries_valid}/{self.entries_total} entries valid, "
            f"{self.checkpoints_valid}/{self.checkpoints_total} checkpoints valid"
        )

    def to_json(self) -> dict[str, Any]:
        """Return a plain-JSON form for `--json`."""
        return {
            "valid": self.ok,
            "entries": {"total": self.entries_total, "valid": self.entries_valid},
            "checkpoints": {"total": self.checkpoints_total, "valid": self.checkpoints_valid},
            "problems": [
                {"subject": p.subject, "number": p.number, "reason": p.reason, "detail": p.detail}
                for p in self.problems
            ],
            "problems_omitted": self.problems_omitted,
            "warnings": self.warnings,
            "summary": self.summary(),
        }


# --- the chain -----------------------------------------------------------------------------

# An entry as the verifier remembers it: (position, seq or None, prev raw or None, hash raw).
_Rec = tuple[int, int | None, bytes | None, bytes]
_GENESIS: _Rec = (0, 0, None, _ZERO)


def _slow_fields(data: bytes) -> tuple[int | None, bytes | None]:
    try:
        obj = json.loads(data)
        seq, prev = obj["seq"], obj["prev"]
        if type(seq) is not int or obj["v"] != 1 or len(prev) != 64:
            return None, None
        return seq, _unhex(prev)
    except (ValueError, TypeError, KeyError, binascii.Error):
        return None, None


def entry_fields(data: bytes) -> tuple[int | None, bytes | None]:
    """Return `(seq, prev)` of stored entry bytes, or `(None, None)` if malformed."""
    i = data.rfind(_PREV_KEY)
    j = data.rfind(_SEQ_KEY)
    if (
        i < 0
        or j < i
        or data[i + 73 : i + 74] != b'"'
        or not data.startswith(_ENTRY_START)
        or not data.endswith(_ENTRY_END)
    ):
        return _slow_fields(data)
    k = data.find(b",", j + 7)
    try:
        return int(data[j + 7 : k]), _unhex(data[i + 9 : i + 73])
    except (ValueError, binascii.Error):
        return _slow_fields(data)


@dataclass
class _PendingCheckpoint:
    label: str
    number: int
    checkpoint: Checkpoint
    bad: bool = False
    inline: bool = False


class TrailVerifier:
    """Check a stream of entries and checkpoints fed in order; `finish()` gives the result.

    A tampering breaks one or more links between neighbouring entries. Consecutive broken
    links are gathered into a run and judged when the chain links up again, so the report
    names the entry at fault (the altered one, the inserted one, the pair swapped, the
    range deleted) rather than merely the first place where the links stop matching.
    """

    def __init__(
        self,
        public_key: Ed25519PublicKey,
        *,
        origin: str | None = None,
        position_label: str = "line",
        on_problem: Callable[[Problem], None] | None = None,
        max_problems: int = 10_000,
        allow_unsigned_tail: bool = False,
    ) -> None:
        self._key = public_key
        self.allow_unsigned_tail = allow_unsigned_tail
        self.origin = origin
        self._where = position_label
        self._on_problem = on_problem
        self._max_problems = max_problems
        self.result = VerifyResult()
        self._before: _Rec = _GENESIS
        self._last: _Rec = _GENESIS
        self._run: list[_Rec] = []
        self._blamed = 0
        self._max_seq = 0
        self._pending: dict[int, list[_PendingCheckpoint]] = {}
        self._checkpoints: list[_PendingCheckpoint] = []
        self._cp_text_hash: dict[str, str | None] = {}
        self._cp_count: dict[str, int] = {}
        self.sink_given = False

    # entries

    def entry(self, data: bytes, position: int) -> None:
        """Feed one entry's stored bytes; `position` locates it in reports (line or row)."""
        self.result.entries_total += 1
        seq, prev = entry_fields(data)
        last = self._last
        h = _sha256(ENTRY_DOMAIN_TAG + (last[3] if prev is None else prev) + data).digest()
        rec: _Rec = (position, seq, prev, h)
        linked = seq is not None and seq == (last[1] or 0) + 1 and prev == last[3]
        if self._run:
            if linked:
                self._judge(self._run, at_end=False)
                self._run = []
            else:
                self._run.append(rec)
                if len(self._run) > _MAX_RUN:
                    self._generic(self._run)
                    self._run = []
        elif not linked:
            self._run = [self._before, last, rec]
        self._before, self._last = last, rec
        if seq is not None:
            if seq > self._max_seq:
                self._max_seq = seq
            if seq in self._pending:
                for cp in self._pending.pop(seq):
                    self._check_head(cp, h)

    @property
    def last_hash(self) -> bytes:
        """Return the chain hash of the entry fed last (as this verifier computed it)."""
        return self._last[3]

    def report(self, problem: Problem) -> None:
        """Record a problem (kept up to `max_problems`) and pass it to `on_problem`."""
        if len(self.result.problems) < self._max_problems:
            self.result.problems.append(problem)
        else:
            self.result.problems_omitted += 1
        if self._on_problem is not None:
            self._on_problem(problem)

    def _blame(self, rec: _Rec, reason: str, number: int | None = None, extra: str = "") -> None:
        self._blamed += 1
        where = f"{self._where} {rec[0]}"
        self.report(Problem("entry", rec[1] if number is None else number, reason, extra + where))

    @staticmethod
    def _links(left: _Rec, right: _Rec) -> bool:
        return left[1] is not None and right[1] == left[1] + 1 and right[2] == left[3]

    def _judge(self, run: list[_Rec], *, at_end: bool) -> None:
        before, left, *mids, right = run
        if not mids:
            self._judge_single(before, left, right)
        elif self._links(left, right):
            if len(mids) == 1 and self._links(right, mids[0]):
                self._swapped(right, mids[0])
                return
            for m in mids:
                self._blame(m, "inserted", extra="its successor links to the entry before it; ")
        elif len(mids) == 1:
            self._judge_one_between(left, mids[0], right)
        elif (
            len(mids) == 2
            and self._links(left, mids[1])
            and self._links(mids[1], mids[0])
            and (at_end or self._links(mids[0], right))
        ):
            self._swapped(mids[1], mids[0])
        else:
            self._generic(run)

    def _swapped(self, first: _Rec, second: _Rec) -> None:
        self._blame(second, "out of order", extra=f"swapped with entry {first[1]}; ")
        self._blame(first, "out of order", extra=f"swapped with entry {second[1]}; ")

    def _judge_single(self, before: _Rec, left: _Rec, right: _Rec) -> None:
        lseq, rseq = left[1], right[1]
        if rseq is None or lseq is None:
            self._blame(right, "malformed", number=None if lseq is None else lseq + 1)
            return
        step = rseq - lseq
        if step == 1:
            if left[0] == 0:
                self._blame(right, "prev link mismatch")
            else:
                self._blame(left, "hash mismatch", extra=f"entry {rseq} records another hash; ")
        elif right[2] == left[3]:
            self._blame(
                right, "hash mismatch", number=lseq + 1, extra=f"its seq field reads {rseq}; "
            )
        elif step > 1:
            self._blame(right, f"seq gap {lseq + 1}..{rseq - 1}")
        elif self._links(before, right):
            self._blame(left, "inserted", extra="its successor links to the entry before it; ")
        else:
            self._blame(right, "out of order", extra=f"after entry {lseq}; ")

    def _judge_one_between(self, left: _Rec, mid: _Rec, right: _Rec) -> None:
        lseq, mseq, rseq = left[1], mid[1], right[1]
        if mseq is None or lseq is None:
            self._blame(mid, "malformed", number=None if lseq is None else lseq + 1)
        elif mseq == lseq + 1 and rseq == mseq + 1:
            self._blame(mid, "prev link mismatch")
        elif mid[2] == left[3] and rseq == lseq + 2:
            self._blame(
                mid, "hash mismatch", number=lseq + 1, extra=f"its seq field reads {mseq}; "
            )
        else:
            self._generic([left, left, mid, right])

    def _generic(self, run: list[_Rec]) -> None:
        for left, right in itertools.pairwise(run[1:]):
            lseq, rseq = left[1], right[1]
            if rseq is None:
                self._blame(right, "malformed", number=None)
            elif lseq is None or self._links(left, right):
                continue
            elif rseq > lseq + 1:
                self._blame(right, f"seq gap {lseq + 1}..{rseq - 1}")
            elif rseq <= lseq:
                self._blame(right, "out of order", extra=f"after entry {lseq}; ")
            else:
                self._blame(right, "prev link mismatch")

    # checkpoints

    def checkpoint(self, note: bytes, position: int, *, source: str = "") -> None:
        """Feed one checkpoint note; `source` is "" for the trail itself or "sink"."""
        label = f"{source} checkpoint".strip()
        number = self._cp_count.get(label, 0) + 1
        self._cp_count[label] = number
        self.result.checkpoints_total += 1
        where = f"{self._where} {position}" if not source else f"{source} record {position}"

        def bad(reason: str, detail: str) -> None:
            self.report(Problem(label, number, reason, detail))

        try:
            cp = verify_checkpoint(note, self._key)
        except CheckpointError as exc:
            reason = "bad signature" if str(exc) == "bad signature" else "malformed"
            try:
                size = f"size {parse_checkpoint(note).size}, "
            except CheckpointError:
                size = ""
            bad(reason, f"{size}{where}")
            self._cp_text_hash[label] = None
            return
        pending = _PendingCheckpoint(label, number, cp)
        self._checkpoints.append(pending)
        detail = f"size {cp.size}, {where}"
        if self.origin is not None and cp.origin != self.origin:
            pending.bad = True
            bad("origin mismatch", f"{cp.origin!r}, {detail}")
        expected_prev = self._cp_text_hash.get(label)
        if label in self._cp_text_hash and expected_prev is not None and cp.prev != expected_prev:
            pending.bad = True
            bad("prev link mismatch", detail)
        elif label not in self._cp_text_hash and cp.prev is not None:
            pending.bad = True
            bad("prev link mismatch", f"the first checkpoint names a predecessor; {detail}")
        self._cp_text_hash[label] = cp.text_hash
        if not source and cp.size == self._last[1] and cp.size > 0:
            self._check_head(pending, self._last[3])
        elif cp.size > self._max_seq or source:
            pending.inline = not source
            self._pending.setdefault(cp.size, []).append(pending)
        else:
            pending.bad = True
            bad("head mismatch", f"no entry {cp.size} just before it; {detail}")

    def _check_head(self, cp: _PendingCheckpoint, digest: bytes) -> None:
        if cp.inline:
            # The exporter writes each checkpoint right after the entry it covers.
            cp.bad = True
            detail = f"size {cp.checkpoint.size}: placed before entry {cp.checkpoint.size}"
            self.report(Problem(cp.label, cp.number, "out of place", detail))
        if digest.hex() != cp.checkpoint.head_hash:
            cp.bad = True
            self.report(
                Problem(
                    cp.label,
                    cp.number,
                    "head mismatch",
                    f"size {cp.checkpoint.size}: entry {cp.checkpoint.size} hashes otherwise",
                )
            )

    def finish(self) -> VerifyResult:
        """Judge what is still open and return the result."""
        if self._run:
            self._judge(self._run, at_end=True)
            self._run = []
        for waiting in self._pending.values():
            for cp in waiting:
                cp.bad = True
                size = cp.checkpoint.size
                if size > self._max_seq:
                    reason = "size beyond trail"
                    detail = f"size {size}, the trail ends at {self._max_seq}: truncated"
                else:
                    reason, detail = "head mismatch", f"size {size}: no entry {size} found"
                self.report(Problem(cp.label, cp.number, reason, detail))
        self._pending = {}
        result = self.result
        result.entries_valid = max(result.entries_total - self._blamed, 0)
        result.checkpoints_valid = sum(1 for cp in self._checkpoints if not cp.bad)
        self._judge_coverage()
        return result

    def _judge_coverage(self) -> None:
        """Fail a trail that no valid signature covers to its end (DESIGN §4.12)."""
        trail = [cp for cp in self._checkpoints if cp.label == "checkpoint" and not cp.bad]
        anchored = max((cp.checkpoint.size for cp in trail), default=0)
        if self.result.entries_total == 0:
            self.report(Problem("trail", None, "empty", "no entry at all: nothing is proven"))
            return
        if not trail:
            self.report(
                Problem("trail", None, "unsigned", "no valid signed checkpoint: nothing is proven")
            )
            return
        if self._max_seq > anchored:
            text = (
                f"entries {anchored + 1}..{self._max_seq} are not covered by a valid signed "
                "checkpoint (unanchored tail)"
            )
            if self.allow_unsigned_tail:
                self.result.warnings.append(text + "; accepted by --allow-unsigned-tail")
            else:
                self.report(Problem("trail", None, "unsigned tail", text))
        sink = [cp for cp in self._checkpoints if cp.label == "sink checkpoint" and not cp.bad]
        if self.sink_given and anchored > max((cp.checkpoint.size for cp in sink), default=0):
            sink_size = max((cp.checkpoint.size for cp in sink), default=0)
            self.report(
                Problem(
                    "sink",
                    None,
                    "behind the trail",
                    f"the trail is signed up to entry {anchored}, the sink only up to "
                    f"{sink_size}: a copy did not land (the next command of the tool retries it)",
                )
            )


# --- inputs --------------------------------------------------------------------------------


def load_public_key(data: bytes) -> Ed25519PublicKey:
    """Load an Ed25519 public key from PEM; raise `ValueError` if it is anything else."""
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the public key is not an Ed25519 key")
    return key


def feed_sink(verifier: TrailVerifier, sink: Path) -> None:
    """Feed every checkpoint of an external sink file to `verifier`, or report why not.

    The sink must be a regular file, not a symlink (a link to `/dev/null` swallows every
    copy), and hold at least one record; anything else is a problem, never a warning.
    """
    verifier.sink_given = True

    def bad(reason: str) -> None:
        verifier.report(Problem("sink", None, reason, str(sink)))

    try:
        info = os.lstat(sink)
    except FileNotFoundError:
        bad("missing")
        return
    except OSError as exc:
        bad(f"unreadable ({exc.strerror})")
        return
    if stat.S_ISLNK(info.st_mode):
        bad("is a symlink")
        return
    if not stat.S_ISREG(info.st_mode):
        bad("is not a regular file")
        return
    if info.st_size == 0:
        bad("empty")
        return
    try:
        stream = open(sink, "rb", opener=_no_follow)  # noqa: SIM115
    except OSError as exc:
        bad(f"unreadable ({exc.strerror})")
        return
    with stream:
        number = 0
        try:
            for number, note in enumerate(read_sink(stream), start=1):
                verifier.checkpoint(note, number, source="sink")
        except CheckpointError as exc:
            verifier.report(Problem("sink record", number + 1, "malformed", str(exc)))
        except OSError as exc:
            bad(f"unreadable ({exc.strerror})")


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0))


def _header_origin(line: bytes, verifier: TrailVerifier) -> str | None:
    try:
        header = json.loads(line)
        ok = header["format"] == EXPORT_FORMAT and header["version"] == EXPORT_VERSION
        origin = header["origin"]
    except (ValueError, KeyError, TypeError):
        ok, origin = False, None
    if not ok or not isinstance(origin, str):
        verifier.report(Problem("header", None, "malformed", "line 1"))
        return None
    return origin


def _checkpoint_line_note(data: bytes) -> bytes:
    """Return the note of a checkpoint line written exactly as the exporter writes it."""
    head, tail = CHECKPOINT_LINE_PREFIX + b'"', b'"}'
    if not (data.startswith(head) and data.endswith(tail)):
        return b""
    try:
        return _strict_b64(data[len(head) : -len(tail)], "checkpoint line")
    except CheckpointError:
        return b""


def verify_lines(
    lines: Iterable[bytes],
    public_key: Ed25519PublicKey,
    sink: Path | None = None,
    on_problem: Callable[[Problem], None] | None = None,
    *,
    allow_unsigned_tail: bool = False,
) -> VerifyResult:
    """Verify export lines (header first); the sink is read before the trail."""
    verifier = TrailVerifier(
        public_key, on_problem=on_problem, allow_unsigned_tail=allow_unsigned_tail
    )
    if sink is not None:
        feed_sink(verifier, sink)
    else:
        verifier.result.warnings.append(NO_SINK_WARNING)
    feed = verifier.entry
    number = 0
    for number, line in enumerate(lines, start=1):
        data = line[:-1] if line.endswith(b"\n") else line
        if number == 1:
            verifier.origin = _header_origin(data, verifier)
        elif data.startswith(_ENTRY_START):
            feed(data, number)
        elif data.startswith(CHECKPOINT_LINE_PREFIX):
            verifier.checkpoint(_checkpoint_line_note(data), number)
        elif data:
            feed(data, number)
    if number == 0:
        verifier.report(Problem("header", None, "malformed", "the export is empty"))
    return verifier.finish()


def verify_export(
    path: Path,
    public_key: Ed25519PublicKey,
    sink: Path | None = None,
    on_problem: Callable[[Problem], None] | None = None,
    *,
    allow_unsigned_tail: bool = False,
) -> VerifyResult:
    """Verify an export file, streaming it; raise `OSError` if the export cannot be read."""
    with Path(path).open("rb") as stream:
        return verify_lines(
            stream, public_key, sink, on_problem, allow_unsigned_tail=allow_unsigned_tail
        )


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m audit.verify",
        description="Verify a rotator audit export offline with the audit public key.",
    )
    parser.add_argument("export", type=Path, help="the JSON Lines export file")
    parser.add_argument("--public-key", type=Path, required=True, help="Ed25519 public key PEM")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--checkpoints-file", type=Path, help="the external checkpoint sink, to catch truncation"
    )
    parser.add_argument(
        "--allow-unsigned-tail",
        action="store_true",
        help="accept entries after the last signed checkpoint (warned, not failed)",
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    try:
        public_key = load_public_key(args.public_key.read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        print(f"error: cannot load the public key {args.public_key}: {exc}", file=sys.stderr)
        return 2

    def show(problem: Problem) -> None:
        print(problem.line(), flush=False)

    try:
        result = verify_export(
            args.export,
            public_key,
            args.checkpoints_file,
            None if args.json else show,
            allow_unsigned_tail=args.allow_unsigned_tail,
        )
    except OSError as exc:
        print(f"error: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        for warning in result.warnings:
            print(f"warning: {warning}")
        print(result.summary())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
