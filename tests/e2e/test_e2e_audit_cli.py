"""The auditor's commands end to end: log, export, offline verify, hash, report."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.e2e.conftest import World

RESEND = "BANDOFBAKERS_RESEND_API_KEY"


def test_auditor_reads_exports_verifies_and_reports(world: World) -> None:
    w = world
    w.at("2027-01-10T11:00")
    done = w.rotate(
        "emergency", RESEND, "--reason", "found in a public gist", "--yes", actor="sec@x"
    )
    assert done.returncode == 0, done.stdout + done.stderr

    log = w.rotate("audit", "log", "--secret", RESEND, "--json")
    entries = [json.loads(line) for line in log.stdout.splitlines()]
    types = [e["type"] for e in entries]
    assert "credential.imported" in types and "emergency.started" in types
    assert all(e["secret"] == RESEND for e in entries)
    only = w.rotate("audit", "log", "--type", "emergency.started", "--actor", "sec@x", "--json")
    assert [json.loads(line)["type"] for line in only.stdout.splitlines()] == ["emergency.started"]
    bad = w.rotate("audit", "log", "--since", "last tuesday")
    assert bad.returncode == 2 and "--since" in bad.stderr

    export = w.home.parent / "trail.jsonl"
    assert w.rotate("audit", "export", str(export)).returncode == 0
    key = w.home / "keys" / "audit-ed25519.pub.pem"
    offline = subprocess.run(
        [sys.executable, "-m", "audit.verify", str(export), "--public-key", str(key)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert offline.returncode == 0, offline.stdout + offline.stderr
    lines = export.read_bytes().splitlines(keepends=True)
    tampered = export.with_name("tampered.jsonl")
    victim = next(i for i, line in enumerate(lines) if b'"emergency.started"' in line)
    lines[victim] = lines[victim].replace(b"public gist", b"private gist")
    tampered.write_bytes(b"".join(lines))
    caught = w.rotate("audit", "verify", str(tampered))
    assert caught.returncode == 1
    assert "INVALID: hash mismatch" in caught.stdout

    # The old (now revoked) value was fingerprinted when imported: the auditor finds it.
    old = w.seeded[RESEND].value
    found = w.rotate("audit", "hash", "--json", input=old + "\n")
    result = json.loads(found.stdout)
    assert result["found"] and result["fingerprint"].startswith("hmac-sha256:")
    assert any(e["type"] == "credential.imported" for e in result["events"])
    assert old not in found.stdout
    missing = w.rotate("audit", "hash", input="re_not_a_key_we_know\n")
    assert missing.returncode == 1 and "not found" in missing.stdout

    report = w.home.parent / "report.html"
    assert w.rotate("audit", "report", "--out", str(report)).returncode == 0
    page = report.read_text()
    assert RESEND in page and "found in a public gist" in page
    assert "<script" not in page.lower()
    for value in w.issued_values():
        assert value not in page


def test_a_checkpoint_every_n_events_reaches_the_sink(world: World) -> None:
    w = world
    text = w.inventory.read_text().replace("checkpoint_every = 1000", "checkpoint_every = 7")
    w.inventory.write_text(text)
    sink = w.inventory.parent / "audit-checkpoints.log"
    before = sink.read_bytes().count(b"rotator-checkpoint ") if sink.exists() else 0
    w.at("2027-01-10T11:00")
    done = w.rotate("emergency", RESEND, "--reason", "drill", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    after = sink.read_bytes().count(b"rotator-checkpoint ")
    events = len(w.rotate("audit", "log", "--json").stdout.splitlines())
    # One per seven events written by this command, plus the one closing the command.
    assert after - before >= 3, (before, after, events)
    verified = w.rotate("audit", "verify", "--json")
    assert verified.returncode == 0, verified.stdout
    assert json.loads(verified.stdout)["valid"] is True


def test_auditor_commands_are_read_only_plain_and_terminal_safe(world: World) -> None:
    w = world
    w.at("2027-01-10T11:00")
    reason = "drill\x1b[2J\x1b[31m\rentry 1 VALID (forged line)\u202e"
    actor = "sec\x1b]0;owned\x07@x"
    done = w.rotate("emergency", RESEND, "--reason", reason, "--yes", actor=actor)
    assert done.returncode == 0, done.stdout + done.stderr

    log = w.rotate("audit", "log")
    show = w.rotate("show", RESEND)
    for out in (log.stdout, show.stdout):
        assert not any(c in out for c in "\x1b\x07\r\u202e"), out
    assert "drill\\x1b[2J\\x1b[31m\\x0dentry 1 VALID" in log.stdout
    assert "sec\\x1b]0;owned\\x07@x" in log.stdout
    # Stored as given: the JSON form carries the exact text.
    started = w.rotate("audit", "log", "--type", "emergency.started", "--json")
    entry = json.loads(started.stdout.splitlines()[0])
    assert entry["details"]["reason"] == reason and entry["actor"] == actor

    before = len(w.rotate("audit", "log", "--json").stdout.splitlines())
    verified = w.rotate("audit", "verify")
    assert verified.returncode == 0, verified.stdout
    assert verified.stdout.splitlines()[-1].startswith("VALID: ")
    assert len(w.rotate("audit", "log", "--json").stdout.splitlines()) == before

    export = w.home.parent / "trail.jsonl"
    human = w.rotate("audit", "export", str(export))
    assert human.returncode == 0, human.stderr
    assert human.stdout.startswith(f"exported {before} entries and ")
    assert "ExportSummary" not in human.stdout
    as_json = json.loads(w.rotate("audit", "export", str(export), "--json").stdout)
    assert as_json["entries"] == before and as_json["checkpoints"] >= 1

    sink = w.inventory.parent / "audit-checkpoints.log"
    good = w.rotate("audit", "verify", str(export), "--checkpoints-file", str(sink))
    assert good.returncode == 0, good.stdout
    for bad_sink, reason_text in (("/dev/null", "is not a regular file"), ("/nope", "missing")):
        bad = w.rotate("audit", "verify", str(export), "--checkpoints-file", bad_sink)
        assert bad.returncode == 1 and f"sink INVALID: {reason_text}" in bad.stdout

    lines = export.read_bytes().splitlines(keepends=True)
    cut = [line for line in lines if not line.startswith(b'{"checkpoint"')]
    export.write_bytes(b"".join(cut))
    unsigned = w.rotate("audit", "verify", str(export))
    assert unsigned.returncode == 1 and "trail INVALID: unsigned" in unsigned.stdout

    report = w.home.parent / "report.html"
    written = w.rotate("audit", "report", "--out", str(report), "--since", "2027-01-01")
    assert written.returncode == 0, written.stdout + written.stderr
    page = report.read_text()
    assert page.index("Verification: VALID") < page.index("Emergencies")
    assert "\x1b" not in page and "Time to contain" in page
