"""`rotate credentials`: the tool's own credentials (import, rotate, list)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from rotator.errors import BadInputError

credentials_app = typer.Typer(
    help="The tool's own credentials (its Cloudflare token): import, rotate, list.",
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
VERIFIABLE = ("cloudflare_api_token",)


def _engine(inventory: str | None) -> Any:
    from rotator.cli import _engine as build

    return build(inventory)


def _json(data: Any) -> None:
    from rotator.secret import MaskingJSONEncoder

    typer.echo(json.dumps(data, indent=2, cls=MaskingJSONEncoder, default=str))


@credentials_app.command("import")
def import_credential(
    name: Annotated[str, typer.Argument(help="cloudflare (cloudflare_api_token).")],
    inventory: InventoryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Store an own credential: read from a hidden prompt or stdin, verified, audited.

    \b
    Examples:
      rotate credentials import cloudflare
      pbpaste | rotate credentials import cloudflare
    """
    from rotator.cli import _read_value
    from rotator.own import cloudflare
    from rotator.own import store as own

    engine = _engine(inventory)
    resolved = own.check_name(engine.rt, name)
    if resolved not in VERIFIABLE:
        raise BadInputError(
            f"{resolved!r} cannot be imported yet (the tool can verify only the Cloudflare "
            "token); keep it in the environment variable or file [credentials] names"
        )
    value = _read_value(f"{resolved} value")
    source = "import:prompt" if sys.stdin.isatty() else "import:stdin"
    token_id = cloudflare.TokenApi(engine).verify(value)
    cloudflare.record_import(
        engine, value, token_id, source=source, event="own.credential.imported"
    )
    engine.checkpoint()
    result = {"credential": resolved, "token_id": token_id, "source": source, "verified": True}
    if as_json:
        _json(result)
        return
    typer.echo(f"{resolved}: verified with Cloudflare (token id {token_id}), stored encrypted")


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
    """`rotate emergency --own cloudflare`: roll the leaked tool token now."""
    from rotator.own import cloudflare
    from rotator.own import store as own

    if secret is not None:
        raise BadInputError("name either a SECRET or --own CREDENTIAL, not both")
    if not reason.strip():
        raise BadInputError(
            "--reason is required for an emergency: say what leaked and how (it is recorded)"
        )
    resolved = own.check_name(engine.rt, name)
    if resolved != cloudflare.NAME:
        raise BadInputError(
            f"--own {name}: the tool can roll only its Cloudflare token (--own cloudflare); "
            "for another credential replace it at its provider and update [credentials]"
        )
    if not yes:
        typer.confirm(
            "Roll the tool's Cloudflare token now? Its current value stops working at once.",
            abort=True,
        )
    # No run lock: a `rotate run` holding it (perhaps in its start-up delay) must not hold
    # up an emergency; the roll is recorded in the step that follows Cloudflare's answer.
    result = cloudflare.emergency(engine, reason)
    engine.checkpoint()
    if as_json:
        # The shape of every `rotate emergency --json` (one outcome per unit).
        outcome = {
            "unit": f"own:{resolved}",
            "status": "done",
            "steps": ["roll", "verify", "verify-revoked", "notify"],
            "message": f"token {result['token_id']} rolled; the leaked value is refused",
            "until": None,
        }
        _json([outcome])
        return
    typer.echo(
        f"{resolved}: rolled (token {result['token_id']}); the leaked value is refused by "
        "Cloudflare, the new one is stored encrypted"
    )
