"""Helpers shared by the audit tests: build a trail, read and rewrite export lines."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine
from sqlmodel import Session

from audit.checkpoint import append_to_sink, make_checkpoint
from audit.export import checkpoint_line
from audit.trail import append

ORIGIN = "rotator.test/audit"
KEY_NAME = "rotator.test-audit"
SECRETS = ("BANDOFBAKERS_RESEND_API_KEY", "BANDOFBAKERS_STRIPE_SECRET_KEY")


def build_trail(
    engine: Engine,
    key: Ed25519PrivateKey,
    sink: Path | None,
    count: int = 20,
    every: int = 5,
) -> None:
    """Append `count` events, one transaction each, with a checkpoint every `every` events."""
    for i in range(1, count + 1):
        with Session(engine) as session:
            append(
                session,
                event_type="rotation.step",
                actor="cron" if i % 3 else "alice",
                secret=SECRETS[i % 2],
                environment="staging",
                rotation_id=f"rot-{i // 7}",
                details={"step": "stage", "outcome": "ok", "n": i, "note": "café ✓"},
                host="test-host",
                tool_version="0.1.0",
            )
            if i % every == 0:
                cp = make_checkpoint(session, key, ORIGIN, KEY_NAME)
                assert cp is not None
                session.commit()
                if sink is not None:
                    append_to_sink(sink, cp.body)
            else:
                session.commit()


def read_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def entry_index(lines: list[bytes], seq: int) -> int:
    """Return the index of the line holding entry `seq`."""
    for index, line in enumerate(lines):
        if line.startswith(b'{"actor":') and json.loads(line)["seq"] == seq:
            return index
    raise LookupError(seq)


def checkpoint_indexes(lines: list[bytes]) -> list[int]:
    return [i for i, line in enumerate(lines) if line.startswith(b'{"checkpoint":')]


def note_of(line: bytes) -> bytes:
    return base64.b64decode(json.loads(line)["checkpoint"])


def sink_from_export(lines: list[bytes], sink: Path) -> None:
    """Copy every checkpoint of an export into an external sink file."""
    for index in checkpoint_indexes(lines):
        append_to_sink(sink, note_of(lines[index]))


def as_checkpoint_line(note: bytes) -> bytes:
    return checkpoint_line(note)


def entry_problems(result: object) -> list[tuple[int | None, str]]:
    problems = result.problems  # type: ignore[attr-defined]
    return [(p.number, p.reason) for p in problems if p.subject == "entry"]


def checkpoint_problems(result: object) -> list[tuple[str, int | None, str]]:
    problems = result.problems  # type: ignore[attr-defined]
    return [(p.subject, p.number, p.reason) for p in problems if "checkpoint" in p.subject]


def sign_and_verify(session: Session, key: Ed25519PrivateKey) -> object:
    """Sign a checkpoint of the trail as the tool would, then verify it from the database."""
    from audit.dbverify import verify_database

    make_checkpoint(session, key, ORIGIN, KEY_NAME)
    session.commit()
    return verify_database(session, key.public_key(), origin=ORIGIN)
