"""`rotate credentials`: the tool's own credentials (import, rotate, list)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from rotator.errors import BadInputError
from rotator.secret import Secret

credentials_app = typer.Typer(
    help="The tool's own credentials (Cloudflare token, Google key, Resend management key).",
    no_args_is_help=True,
)

InventoryOpt = Annotated[
    str | None,
    typer.Option(
        "--inventory",
        "-i",
        help="Inventory TOML file [default: $ROTATOR_INVENTORY, else <state dir>/inventory.toml].",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]


def _engine(inventory: str | None) -> Any:
    from rotator.cli import _engine as build

    return build(inventory)


def _json(data: Any) -> None:
    from rotator.secret import MaskingJSONEncoder

    typer.echo(json.dumps(data, indent=2, cls=MaskingJSONEncoder, default=str))


@credentials_app.command("import")
def import_credential(
    name: Annotated[
        str,
        typer.Argument(
            help="cloudflare, google, resend-management (or the [credentials] name itself)."
        ),
    ],
    inventory: InventoryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Store an own credential: read from a hidden prompt or stdin, verified, audited.

    The provider must accept the value first (Cloudflare's token verify, a Google token
    exchange, Resend's key list); a refused value changes nothing (exit 7). The Google
    key is a JSON file: pipe it, then delete that copy.

    \b
    Examples:
      rotate credentials import cloudflare
      rotate credentials import google < sa-key.json
      pbpaste | rotate credentials import resend-management
    """
    from rotator.cli import _read_value
    from rotator.own import importing

    engine = _engine(inventory)
    resolved, kind = importing.resolve(engine.rt, name)
    interactive = sys.stdin.isatty()
    value = importing.read(kind, lambda: _read_value(f"{resolved} value"), _read_stdin, interactive)
    source = "import:prompt" if interactive else "import:stdin"
    done = importing.verify_and_store(engine, resolved, kind, value, source)
    engine.checkpoint()
    if as_json:
        # The provider's id in its own words, as `rotate credentials rotate` names it.
        ref = {"cloudflare": "token_id", "google": "key_id"}.get(kind, "key_id")
        _json({"credential": resolved, ref: done.provider_ref, "source": source, "verified": True})
        return
    typer.echo(f"{resolved}: {done.how}; stored encrypted")


def _read_stdin() -> Secret:
    """All of stdin as text (a key file spans lines), decoded strictly."""
    try:
        return Secret(sys.stdin.buffer.read().decode("utf-8"))
    except UnicodeDecodeError:
        raise BadInputError("what was read is not UTF-8 text; pipe the key file itself") from None


@credentials_app.command("rotate")
def rotate_credential(
    name: Annotated[
        str,
        typer.Argument(help="cloudflare (cloudflare_api_token) or google (gcp_service_account)."),
    ],
    inventory: InventoryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rotate an own credential now by overlap (new, verify, switch, delete old); resumes.

    \b
    Examples:
      rotate credentials rotate cloudflare
      rotate credentials rotate google --json
    """
    from rotator.own import cloudflare, google
    from rotator.own import store as own

    engine = _engine(inventory)
    resolved = own.check_name(engine.rt, name)
    if resolved not in (google.NAME, cloudflare.NAME):
        raise BadInputError(
            f"{resolved!r} cannot be rotated by the tool; only cloudflare and google (see "
            "docs/operator-guide.md, The tool's own credentials)"
        )
    from rotator.runlock import RunLock

    # The host's run lock, as `rotate run` takes it: one process drives a rotation at a time.
    with RunLock():
        if resolved == google.NAME:
            result = google.rotate(engine, kind="manual")
            what = f"key {result['old_key_id']} deleted, {result['new_key_id']} current"
        else:
            result = cloudflare.rotate(engine, kind="manual")
            what = f"token {result['old_token_id']} deleted, {result['new_token_id']} current"
    engine.checkpoint()
    if as_json:
        _json(result)
        return
    typer.echo(f"{resolved}: rotated ({what})")


@credentials_app.command("list")
def list_credentials(inventory: InventoryOpt = None, as_json: JsonOpt = False) -> None:
    """Where each own credential comes from, when it is next rotated (no network).

    \b
    Examples:
      rotate credentials list
      rotate credentials list --json
    """
    from rotator.own.check import sources

    engine = _engine(inventory)
    rows = sources(engine)
    if as_json:
        _json(rows)
        return
    for row in rows:
        typer.echo(f"{row['credential']:<28} {row['source']}; {row['cycle']}")


def own_emergency(
    engine: Any, name: str, secret: str | None, reason: str, *, yes: bool, as_json: bool
) -> None:
    """`rotate emergency --own cloudflare|google`: replace a leaked tool credential now."""
    from rotator.own import cloudflare, google
    from rotator.own import store as own

    if secret is not None:
        raise BadInputError("name either a SECRET or --own CREDENTIAL, not both")
    if not reason.strip():
        raise BadInputError(
            "--reason is required for an emergency: say what leaked and how (it is recorded)"
        )
    resolved = own.check_name(engine.rt, name)
    if resolved not in (cloudflare.NAME, google.NAME):
        raise BadInputError(
            f"--own {name}: the tool can replace only its Cloudflare token (--own cloudflare) "
            "and its Google service-account key (--own google); for another credential "
            "replace it at its provider, then `rotate credentials import` it"
        )
    if not yes:
        what = (
            "Roll the tool's Cloudflare token now? Its current value stops working at once."
            if resolved == cloudflare.NAME
            else "Replace the tool's Google service-account key now? The current key is "
            "deleted as soon as the new one works."
        )
        typer.confirm(what, abort=True)
    # No run lock: a `rotate run` holding it (perhaps in its start-up delay) must not hold
    # up an emergency; each step is recorded right after the provider's answer.
    if resolved == cloudflare.NAME:
        result = cloudflare.emergency(engine, reason)
        steps = ["roll", "verify", "verify-revoked", "notify"]
        message = f"token {result['token_id']} rolled; the leaked value is refused"
        said = (
            f"rolled (token {result['token_id']}); the leaked value is refused by Cloudflare, "
            "the new one is stored encrypted"
        )
    else:
        result = google.emergency(engine, reason)
        steps = ["create", "exchange", "switch", "delete", "verify-revoked", "notify"]
        message = (
            f"key {result['old_key_id']} deleted and refused; key {result['new_key_id']} current"
        )
        said = (
            f"replaced (key {result['old_key_id']} deleted, Google refuses it; key "
            f"{result['new_key_id']} in the key file)"
        )
    engine.checkpoint()
    told = f"{result['notified']} notification channel(s) told"
    if as_json:
        # The shape of every `rotate emergency --json` (one outcome per unit).
        outcome = {
            "unit": f"own:{resolved}",
            "status": "done",
            "steps": steps,
            "message": f"{message}; {told}",
            "until": None,
        }
        _json([outcome])
        return
    typer.echo(f"{resolved}: {said}; {told}")
