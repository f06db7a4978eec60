"""Checkpoints follow the C2SP signed-note format, chain to each other, and reach the sink."""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

import pytest
from audit_test_support import KEY_NAME, ORIGIN
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine
from sqlmodel import Session

from audit.checkpoint import (
    append_to_sink,
    checkpoint_body,
    make_checkpoint,
    should_checkpoint,
    sign_note,
)
from audit.trail import append
from audit.verify import CheckpointError, parse_checkpoint, read_sink, verify_checkpoint


def test_note_layout_and_key_hash_follow_the_spec(signing_key: Ed25519PrivateKey) -> None:
    head = "ab" * 32
    body = checkpoint_body(ORIGIN, 7, head, None)
    assert body == f"{ORIGIN}\n7\n{base64.b64encode(bytes.fromhex(head)).decode()}\n".encode()
    note = sign_note(body, signing_key, KEY_NAME)
    text, signature_line = note.split(b"\n\n")
    assert text + b"\n" == body
    assert signature_line.startswith(f"\u2014 {KEY_NAME} ".encode())
    blob = base64.b64decode(signature_line.split(b" ")[-1])
    raw = signing_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert blob[:4] == hashlib.sha256(KEY_NAME.encode() + b"\n\x01" + raw).digest()[:4]
    assert len(blob) == 68
    signing_key.public_key().verify(blob[4:], body)


def test_make_checkpoint_chains_and_skips_when_nothing_is_new(
    engine: Engine, signing_key: Ed25519PrivateKey
) -> None:
    with Session(engine) as session:
        assert make_checkpoint(session, signing_key, ORIGIN, KEY_NAME) is None
        event = append(session, event_type="plan", actor="cron")
        first = make_checkpoint(session, signing_key, ORIGIN, KEY_NAME)
        assert first is not None and first.size == 1 and first.head_hash == event.entry_hash
        assert make_checkpoint(session, signing_key, ORIGIN, KEY_NAME) is None
        append(session, event_type="stage", actor="cron")
        second = make_checkpoint(session, signing_key, ORIGIN, KEY_NAME)
        session.commit()
        assert second is not None
        one = verify_checkpoint(first.body, signing_key.public_key(), KEY_NAME)
        two = verify_checkpoint(second.body, signing_key.public_key())
        assert one.prev is None and one.head_hash == event.entry_hash
        assert two.size == 2 and two.prev == hashlib.sha256(one.text).hexdigest()


def test_verify_refuses_other_keys_names_and_edits(
    signing_key: Ed25519PrivateKey, other_key: Ed25519PrivateKey
) -> None:
    note = sign_note(checkpoint_body(ORIGIN, 3, "00" * 32, None), signing_key, KEY_NAME)
    with pytest.raises(CheckpointError, match="bad signature"):
        verify_checkpoint(note, other_key.public_key())
    with pytest.raises(CheckpointError, match="bad signature"):
        verify_checkpoint(note, signing_key.public_key(), key_name="someone-else")
    with pytest.raises(CheckpointError, match="bad signature"):
        verify_checkpoint(note.replace(b"\n3\n", b"\n4\n"), signing_key.public_key())
    # A second signature by an unknown key is ignored, as the signed-note spec asks.
    cosigned = note + sign_note(parse_checkpoint(note).text, other_key, "witness").split(b"\n\n")[1]
    assert verify_checkpoint(cosigned, signing_key.public_key()).size == 3


@pytest.mark.parametrize(
    "note",
    [
        b"",
        b"origin\n1\n",
        "origin\n01\nAAAA\n\n\u2014 k AAAAAAA=\n".encode(),  # leading zero in the size
        b"origin\n1\nAAAA\n\n- k AAAAAAA=\n",  # a hyphen is not the em dash
    ],
)
def test_malformed_notes_are_refused(note: bytes) -> None:
    with pytest.raises(CheckpointError):
        parse_checkpoint(note)


def test_names_with_spaces_are_refused(signing_key: Ed25519PrivateKey) -> None:
    with pytest.raises(ValueError):
        checkpoint_body("two words", 1, "00" * 32, None)
    with pytest.raises(ValueError):
        sign_note(b"x\n", signing_key, "a+b")


def test_sink_appends_records_with_mode_0600(
    tmp_path: Path, signing_key: Ed25519PrivateKey
) -> None:
    sink = tmp_path / "sink"
    notes = [
        sign_note(checkpoint_body(ORIGIN, n, "11" * 32, None), signing_key, KEY_NAME)
        for n in (1, 2, 3)
    ]
    for note in notes:
        append_to_sink(sink, note)
    assert stat.S_IMODE(sink.stat().st_mode) == 0o600
    with sink.open("rb") as stream:
        assert list(read_sink(stream)) == notes
    sink.write_bytes(sink.read_bytes()[:-10])
    with sink.open("rb") as stream, pytest.raises(CheckpointError, match="truncated"):
        list(read_sink(stream))


@pytest.mark.parametrize(("size", "due"), [(0, False), (999, False), (1000, True), (2000, True)])
def test_should_checkpoint(size: int, due: bool) -> None:
    assert should_checkpoint(size, every=1000) is due
