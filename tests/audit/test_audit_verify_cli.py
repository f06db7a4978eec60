"""`python -m audit.verify` as an auditor runs it: exit codes, output, and no tool imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from audit_test_support import (
    KEY_NAME,
    ORIGIN,
    build_trail,
    entry_index,
    read_lines,
    write_lines,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine
from sqlmodel import Session

from audit.checkpoint import append_to_sink, make_checkpoint
from audit.export import export

ROOT = Path(__file__).resolve().parents[2]


def pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture
def exported(
    sqlite_engine: Engine, signing_key: Ed25519PrivateKey, tmp_path: Path
) -> tuple[Path, Path, Path]:
    sink = tmp_path / "sink"
    build_trail(sqlite_engine, signing_key, sink, count=12, every=5)
    with Session(sqlite_engine) as session:
        # The export's closing checkpoint, signed at export time as `rotate audit export` does.
        closing = make_checkpoint(session, signing_key, ORIGIN, KEY_NAME)
        assert closing is not None
        session.commit()
        append_to_sink(sink, closing.body)
    path = tmp_path / "export.jsonl"
    with Session(sqlite_engine) as session, path.open("wb") as out:
        summary = export(
            session, out, origin=ORIGIN, public_key_pem=pem(signing_key), key_name=KEY_NAME
        )
    assert (summary.entries, summary.checkpoints) == (12, 3)
    key = tmp_path / "audit.pub.pem"
    key.write_bytes(pem(signing_key))
    return path, key, sink


def run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "audit.verify", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_valid_export_exits_0(exported: tuple[Path, Path, Path]) -> None:
    path, key, sink = exported
    done = run(path, "--public-key", key, "--checkpoints-file", sink)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "12/12 entries valid, 6/6 checkpoints valid"
    assert "warning" not in done.stdout


def test_tampered_export_exits_1_and_names_the_entry(exported: tuple[Path, Path, Path]) -> None:
    path, key, _ = exported
    lines = read_lines(path)
    i = entry_index(lines, 4)
    lines[i] = lines[i].replace(b'"n":4', b'"n":9')
    write_lines(path, lines)
    done = run(path, "--public-key", key)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0].startswith("entry 4 INVALID: hash mismatch")
    assert done.stdout.splitlines()[-1] == "11/12 entries valid, 3/3 checkpoints valid"
    as_json = json.loads(run(path, "--public-key", key, "--json").stdout)
    assert as_json["valid"] is False
    assert as_json["problems"][0]["number"] == 4


def test_usage_and_io_errors_exit_2(
    exported: tuple[Path, Path, Path], tmp_path: Path, other_key: Ed25519PrivateKey
) -> None:
    path, key, _ = exported
    assert run(path).returncode == 2
    assert run(tmp_path / "missing.jsonl", "--public-key", key).returncode == 2
    assert run(path, "--public-key", tmp_path / "missing.pem").returncode == 2
    not_a_key = tmp_path / "bad.pem"
    not_a_key.write_text("hello")
    assert run(path, "--public-key", not_a_key).returncode == 2
    # A named sink that is missing fails the verification itself (exit 1), with the reason.
    missing = run(path, "--public-key", key, "--checkpoints-file", tmp_path / "nope")
    assert missing.returncode == 1
    assert missing.stdout.splitlines()[0] == f"sink INVALID: missing ({tmp_path / 'nope'})"


def test_other_public_key_makes_every_checkpoint_invalid(
    exported: tuple[Path, Path, Path], tmp_path: Path, other_key: Ed25519PrivateKey
) -> None:
    path, _, _ = exported
    other = tmp_path / "other.pem"
    other.write_bytes(pem(other_key))
    done = run(path, "--public-key", other)
    assert done.returncode == 1
    assert "checkpoint 1 INVALID: bad signature" in done.stdout


def test_verifier_imports_only_the_standard_library_and_cryptography() -> None:
    code = (
        "import sys, audit.verify\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'sqlalchemy', 'sqlmodel', 'rotator', 'typer', 'httpx'} "
        "or (m.startswith('audit.') and m != 'audit.verify'))\n"
        "print(bad)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.strip() == "[]", done.stderr


def test_verifier_runs_as_a_copied_single_file(
    exported: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    path, key, _ = exported
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "verify.py").write_bytes((ROOT / "audit" / "verify.py").read_bytes())
    done = subprocess.run(
        [sys.executable, "verify.py", str(path), "--public-key", str(key)],
        capture_output=True,
        text=True,
        cwd=alone,
    )
    assert done.returncode == 0, done.stderr
