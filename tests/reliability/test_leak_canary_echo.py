"""Leak canary, part three: a provider that echoes the key in its 400 answer.

Redaction is by value (`rotator.redact`): key shapes miss Resend, GCP, Google OAuth and
Cloudflare values. A provider double answers every call with the key it was sent, in a
code-like field and in free text; the value must reach no byte that is written: the
exception text, a log file, the audit trail (database, export, report) or the CLI's
error line. Values are made fresh for each test so that no other test registered them.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine
from sqlmodel import Session, SQLModel

import rotator.store.models  # noqa: F401  (registers the tables)
from audit.checkpoint import make_checkpoint
from audit.export import export
from audit.report import render_report
from audit.trail import append, iter_events
from providers.base import ProviderContext
from providers.http import HttpClient
from providers.resend import ResendProvider
from rotator.errors import ProviderError
from rotator.redact import REDACTED, install_logging, scrub
from rotator.secret import Secret

ROOT = Path(__file__).resolve().parents[2]


def fresh_key() -> str:
    # Shaped like none of the prefixes a shape filter would know.
    return "k" + secrets.token_urlsafe(24)


def echoing(key: str) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        body = {
            "name": key,
            "message": f"API key {key} is invalid",
            "error": {"code": key, "message": f"bad key {quote(key)}"},
        }
        return httpx.Response(400, json=body)

    return httpx.MockTransport(answer)


def context(key: str) -> ProviderContext:
    http = HttpClient(httpx.Client(transport=echoing(key), timeout=5.0), sleep=lambda _s: None)
    return ProviderContext(
        secret_name="BANDOFBAKERS_RESEND_API_KEY",
        scope_env=None,
        rotation_id="rot-echo",
        options={},
        urls={"resend": "https://api.resend.test"},
        http=http,
        credentials=None,  # type: ignore[arg-type]
        current=Secret(key),
    )


def test_scrub_covers_exact_and_encoded_forms() -> None:
    key = fresh_key() + "/+="
    Secret(key)
    b64 = base64.b64encode(key.encode()).decode()
    for text in (
        f"x {key} y",
        f"x {quote(key, safe='')} y",
        f"x {json.dumps(key)[1:-1]} y",
        f"x {b64} y",
        f"x {b64.rstrip('=')} y",
        f"x {base64.urlsafe_b64encode(key.encode()).decode()} y",
    ):
        assert key not in scrub(text) and REDACTED in scrub(text), text
    assert scrub("nothing held here") == "nothing held here"


def test_a_provider_echoing_the_key_leaks_it_nowhere(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = fresh_key()
    provider = ResendProvider()
    with pytest.raises(ProviderError) as caught:
        provider.validate(context(key), Secret(key))
    message = str(caught.value)
    assert key not in message

    # The engine records provider errors in the trail; the append scrubs what it is given,
    # even the raw body a careless caller might pass.
    engine = create_engine(f"sqlite:///{tmp_path / 'trail.db'}")
    SQLModel.metadata.create_all(engine)
    signing = Ed25519PrivateKey.generate()
    raw_body = json.dumps({"message": f"API key {key} is invalid"})
    with Session(engine) as session:
        append(
            session,
            event_type="step.failed",
            actor="cron",
            details={"error": message, "body": raw_body, "list": [key, {"k": key}]},
        )
        make_checkpoint(session, signing, "o", "k")
        session.commit()
        out = tmp_path / "export.jsonl"
        with out.open("wb") as stream:
            export(session, stream, origin="o", public_key_pem=b"", key_name="k")
        page = render_report(list(iter_events(session)), None)
    engine.dispose()

    install_logging()
    log_file = tmp_path / "debug.log"
    handler = logging.FileHandler(log_file)
    logging.getLogger().addHandler(handler)
    try:
        logging.getLogger("rotator.test").warning("provider said %s", raw_body)
        try:
            raise ValueError(f"echo {key}")
        except ValueError:
            logging.getLogger("providers.test").exception("failed")
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()

    places = {
        "exception": message.encode(),
        "database": (tmp_path / "trail.db").read_bytes(),
        "export": out.read_bytes(),
        "report": page.encode(),
        "log file": log_file.read_bytes(),
        "captured log": caplog.text.encode(),
    }
    leaks = [where for where, data in places.items() if key.encode() in data]
    assert leaks == []
    assert REDACTED.encode() in places["database"]
    assert REDACTED.encode() in places["log file"]


def test_the_cli_error_line_is_scrubbed(tmp_path: Path, monkeypatch: Any) -> None:
    """An error message carrying a held value is scrubbed on its way to stderr."""
    key = fresh_key()
    code = (
        "import sys\n"
        "from rotator.secret import Secret\n"
        "from rotator.errors import ProviderError\n"
        "import rotator.cli as cli\n"
        f"Secret({key!r})\n"
        "def boom(*a, **k):\n"
        f"    raise ProviderError('the provider said: {key}')\n"
        "cli.app = boom\n"
        "cli.main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert done.returncode == 7, done.stderr
    assert key not in done.stderr + done.stdout
    assert "the provider said: [REDACTED]" in done.stderr
