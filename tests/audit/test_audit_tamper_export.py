"""Tamper with an export line by line: every change is detected and names what changed."""

from __future__ import annotations

import functools
import io
import json
from pathlib import Path

import pytest
from audit_test_support import (
    as_checkpoint_line,
    checkpoint_indexes,
    checkpoint_problems,
    entry_index,
    entry_problems,
    note_of,
    read_lines,
    sink_from_export,
    write_lines,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.checkpoint import sign_note
from audit.entry import encode_entry
from audit.synthetic import write_synthetic_export
from audit.verify import entry_hash, parse_checkpoint, verify_export, verify_lines

ORIGIN = "rotator.example/synthetic"
KEY_NAME = "rotator.example-synthetic"


@pytest.fixture
def export_file(tmp_path: Path, signing_key: Ed25519PrivateKey) -> Path:
    path = tmp_path / "trail.jsonl"
    with path.open("wb") as out:
        write_synthetic_export(out, 20, signing_key, checkpoint_every=5)
    return path


@pytest.fixture
def sink(tmp_path: Path, export_file: Path) -> Path:
    path = tmp_path / "sink.log"
    sink_from_export(read_lines(export_file), path)
    return path


def test_untouched_export_verifies(
    export_file: Path, sink: Path, signing_key: Ed25519PrivateKey
) -> None:
    result = verify_export(export_file, signing_key.public_key(), sink)
    assert result.ok, result.problems
    assert result.summary() == "20/20 entries valid, 8/8 checkpoints valid"
    assert result.warnings == []


def test_one_byte_changed_names_the_entry(
    export_file: Path, sink: Path, signing_key: Ed25519PrivateKey
) -> None:
    lines = read_lines(export_file)
    i = entry_index(lines, 7)
    lines[i] = lines[i].replace(b'"actor":"cron"', b'"actor":"cro0"')
    write_lines(export_file, lines)
    result = verify_export(export_file, signing_key.public_key(), sink)
    assert not result.ok
    assert entry_problems(result) == [(7, "hash mismatch")]
    assert result.entries_valid == 19


def test_byte_changed_inside_prev_names_the_entry(
    export_file: Path, signing_key: Ed25519PrivateKey
) -> None:
    lines = read_lines(export_file)
    i = entry_index(lines, 8)
    at = lines[i].index(b'"prev":"') + 8
    flipped = b"1" if lines[i][at : at + 1] != b"1" else b"2"
    lines[i] = lines[i][:at] + flipped + lines[i][at + 1 :]
    write_lines(export_file, lines)
    result = verify_export(export_file, signing_key.public_key())
    assert entry_problems(result) == [(8, "prev link mismatch")]


def test_byte_breaking_the_json_is_malformed(
    export_file: Path, signing_key: Ed25519PrivateKey
) -> None:
    lines = read_lines(export_file)
    i = entry_index(lines, 12)
    lines[i] = lines[i].replace(b'"seq":12,', b'"seq":12;')
    write_lines(export_file, lines)
    result = verify_export(export_file, signing_key.public_key())
    assert entry_problems(result) == [(12, "malformed")]


def test_deleted_entry_is_a_named_gap(
    export_file: Path, sink: Path, signing_key: Ed25519PrivateKey
) -> None:
    lines = read_lines(export_file)
    del lines[entry_index(lines, 9)]
    write_lines(export_file, lines)
    result = verify_export(export_file, signing_key.public_key(), sink)
    assert entry_problems(result) == [(10, "seq gap 9..9")]


def test_deleted_checkpointed_entry_also_fails_its_checkpoint(
    export_file: Path, signing_key: Ed25519PrivateKey
) -> None:
    lines = read_lines(export_file)
    del lines[entry_index(lines, 10)]
    write_lines(export_file, lines)
    result = verify_export(export_file, signing_key.public_key())
    assert entry_problems(result) == [(11, "seq gap 10..10")]
    assert ("checkpoint", 2, "head mismatch") in checkpoint_problems(result)


def test_two_swapped_entries_are_both_named(
    export_file: Path, sink: Path, signing_key: Ed25519PrivateKey
) -> None:
    lines = read_lines(export_file)
    a, b = entry_index(lines, 12), entry_index(lines, 13)
    lines[a], lines[b] = lines[b], lines[a]
    write_lines(export_file, lines)
    result = verify_export(export_file, signing_key.public_key(), sink)
    assert sorted(entry_problems(result)) == [(12, "out of order"), (13, "out of order")]


def test_swapped_last_two_entries_are_named(tmp_path: Path, signing_key: Ed25519PrivateKey) -> None:
    path = tmp_path / "t.jsonl"
    with path.open("wb") as out:
        write_synthetic_export(out, 20, signing_key, checkpoint_every=100)
    lines = [line for line in read_lines(path) if not line.startswith(b'{"checkpoint"')]
    a, b = entry_index(lines, 19), entry_index(lines, 20)
    lines[a], lines[b] = lines[b], lines[a]
    write_lines(path, lines)
    result = verify_export(path, signing_key.public_key())
    assert sorted(entry_problems(result)) == [(19, "out of order"), (20, "out of order")]


def test_forged_entry_inserted_with_valid_link_is_named(
    export_file: Path, sink: Path, signing_key: Ed25519PrivateKey
) -> None:
    lines = read_lines(export_file)
    five = lines[entry_index(lines, 5)].rstrip(b"\n")
    prev5 = json.loads(five)["prev"]
    forged = encode_entry(
        seq=6,
        prev=entry_hash(prev5, five),
        time=parse_time("2026-01-01T00:00:06Z"),
        actor="mallory",
        event_type="approval",
        details={"note": "looks legitimate"},
    )
    lines.insert(entry_index(lines, 6), forged + b"\n")
    write_lines(export_file, lines)
    result = verify_export(export_file, signing_key.public_key(), sink)
    problems = [p for p in result.problems if p.subject == "entry"]
    assert [(p.number, p.reason) for p in problems] == [(6, "inserted")]
    # The seq is shared with the genuine entry, so the line number says which one it is.
    assert f"line {entry_index(lines, 6) + 1}" in problems[0].detail


def test_copied_entry_inserted_later_is_named(
    export_file: Path, signing_key: Ed25519PrivateKey
) -> None:
    lines = read_lines(export_file)
    copy = lines[entry_index(lines, 3)]
    lines.insert(entry_index(lines, 14), copy)
    write_lines(export_file, lines)
    result = verify_export(export_file, signing_key.public_key())
    assert entry_problems(result) == [(3, "inserted")]


def test_truncated_tail_is_caught_by_the_sink(
    export_file: Path, sink: Path, signing_key: Ed25519PrivateKey
) -> None:
    lines = read_lines(export_file)
    cut = entry_index(lines, 16)
    write_lines(export_file, lines[:cut])
    without_sink = verify_export(export_file, signing_key.public_key())
    assert without_sink.ok  # a clean cut at a checkpoint is invisible from the export alone
    result = verify_export(export_file, signing_key.public_key(), sink)
    assert not result.ok
    assert checkpoint_problems(result) == [("sink checkpoint", 4, "size beyond trail")]
    assert "size 20" in result.problems[0].detail


def test_checkpoint_signed_with_another_key_is_named(
    export_file: Path, other_key: Ed25519PrivateKey, signing_key: Ed25519PrivateKey
) -> None:
    lines = read_lines(export_file)
    third = checkpoint_indexes(lines)[2]
    text = parse_checkpoint(note_of(lines[third])).text
    lines[third] = as_checkpoint_line(sign_note(text, other_key, KEY_NAME))
    write_lines(export_file, lines)
    result = verify_export(export_file, signing_key.public_key())
    assert checkpoint_problems(result) == [("checkpoint", 3, "bad signature")]
    assert entry_problems(result) == []


def test_rewritten_chain_is_caught_by_a_checkpoint(
    export_file: Path, signing_key: Ed25519PrivateKey
) -> None:
    """Editing entry 3 and re-linking every later entry leaves only the signature to object."""
    lines = read_lines(export_file)
    rebuilt: list[bytes] = []
    prev = "0" * 64
    for line in lines:
        if not line.startswith(b'{"actor":'):
            rebuilt.append(line)
            continue
        entry = json.loads(line)
        if entry["seq"] == 3:
            entry["actor"] = "mallory"
        entry["prev"] = prev
        stored = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        raw = stored.encode()
        prev = entry_hash(prev, raw)
        rebuilt.append(raw + b"\n")
    write_lines(export_file, rebuilt)
    result = verify_export(export_file, signing_key.public_key())
    assert entry_problems(result) == []
    assert checkpoint_problems(result)[0] == ("checkpoint", 1, "head mismatch")


def test_deleted_checkpoint_line_breaks_the_checkpoint_chain(
    export_file: Path, signing_key: Ed25519PrivateKey
) -> None:
    lines = read_lines(export_file)
    del lines[checkpoint_indexes(lines)[1]]
    write_lines(export_file, lines)
    result = verify_export(export_file, signing_key.public_key())
    assert checkpoint_problems(result) == [("checkpoint", 2, "prev link mismatch")]


def test_unanchored_tail_fails_unless_accepted(
    tmp_path: Path, signing_key: Ed25519PrivateKey
) -> None:
    path = tmp_path / "t.jsonl"
    with path.open("wb") as out:
        write_synthetic_export(out, 12, signing_key, checkpoint_every=5)
    lines = [line for line in read_lines(path)]
    del lines[checkpoint_indexes(lines)[-1]]  # the closing checkpoint at 12
    write_lines(path, lines)
    result = verify_export(path, signing_key.public_key())
    assert not result.ok
    assert [(p.subject, p.reason) for p in result.problems] == [("trail", "unsigned tail")]
    assert "entries 11..12" in result.problems[0].detail
    accepted = verify_export(path, signing_key.public_key(), allow_unsigned_tail=True)
    assert accepted.ok
    assert any("entries 11..12" in w and "unanchored" in w for w in accepted.warnings)


def parse_time(text: str):  # type: ignore[no-untyped-def]
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_single_byte_change_is_detected(data: st.DataObject) -> None:
    """Every byte of every entry and checkpoint line is protected (the header is informative)."""
    key = _PROPERTY_KEY
    original = _property_export()
    lines = original.splitlines(keepends=True)
    index = data.draw(st.integers(min_value=1, max_value=len(lines) - 1), label="line")
    line = lines[index]
    at = data.draw(st.integers(min_value=0, max_value=len(line) - 1), label="byte")
    new = data.draw(st.integers(min_value=0, max_value=255).filter(lambda b: b != line[at]))
    lines[index] = line[:at] + bytes([new]) + line[at + 1 :]
    result = verify_lines(b"".join(lines).splitlines(keepends=True), key.public_key())
    assert not result.ok


_PROPERTY_KEY = Ed25519PrivateKey.generate()


@functools.cache
def _property_export() -> bytes:
    out = io.BytesIO()
    write_synthetic_export(out, 30, _PROPERTY_KEY, checkpoint_every=7)
    return out.getvalue()
