"""The `rotate` command: parse, call one library function, render. No rotation logic here.

Imports stay inside the commands so `rotate --help` loads neither SQLAlchemy, httpx nor
cryptography (a test checks `sys.modules`).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from rotator import __version__
from rotator.errors import BadInputError, RotatorError
from rotator.own.cli import credentials_app

if TYPE_CHECKING:
    from rotator.commands import PlanLine
    from rotator.engine import Engine, Outcome
    from rotator.inventory import Inventory
    from rotator.runtime import Runtime
    from rotator.secret import Secret

EXIT_INTERNAL = 70
"""An unexpected error (a bug): one line on stderr, the traceback in a 0600 file."""

app = typer.Typer(
    name="rotate",
    help="Rotate Band of Bakers' third-party credentials: quarterly, month by month, "
    "staging first; at once when one leaks; with a tamper-evident audit trail.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage the tool's own keys.", no_args_is_help=True)
audit_app = typer.Typer(
    help="Read, export and verify the audit trail (changes nothing).", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(credentials_app, name="credentials")  # rotator/own/cli.py

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
EnvOpt = Annotated[
    str | None,
    typer.Option("--env", "-e", help="Environment, for a secret with one value per environment."),
]


def _complete_secret(ctx: typer.Context, incomplete: str) -> list[str]:
    """Offer the inventory's secret names (shell completion); parse the TOML, nothing more."""
    import tomllib

    from rotator.paths import inventory_path

    explicit = ctx.params.get("inventory") if ctx is not None else None
    try:
        with open(inventory_path(explicit), "rb") as fh:
            names = list((tomllib.load(fh).get("secrets") or {}).keys())
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        return []
    return sorted(n for n in names if n.lower().startswith(incomplete.lower()))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rotate {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="Print nothing but errors (and --json output); the exit code says the rest. "
            "Accepted anywhere on the line, e.g. `rotate run --quiet`.",
        ),
    ] = False,
) -> None:
    """Rotate third-party credentials on a schedule and in emergencies."""


# ------------------------------------------------------------------------- plumbing
def _echo_err(text: str) -> None:
    from rotator.redact import scrub

    typer.echo(terminal_safe(scrub(text), keep_newlines=True), err=True)


# C0, DEL and C1 controls, and the bidirectional overrides that reorder what a terminal shows.
_UNSAFE = {
    c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
    for c in [
        *range(0x20),
        0x7F,
        *range(0x80, 0xA0),
        0x2028,
        0x2029,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
        0x200E,
        0x200F,
        0x061C,
    ]
}
_UNSAFE_KEEP_NL = {c: v for c, v in _UNSAFE.items() if c != 0x0A}


def terminal_safe(text: str, *, keep_newlines: bool = False) -> str:
    """Return `text` with control characters shown escaped (`\\x1b`).

    What people typed (a reason, a note, an actor name) or a database writer stored then
    cannot move the cursor, recolour the terminal or forge lines. What is stored is
    unchanged; only the terminal sees the escapes.
    """
    return text.translate(_UNSAFE_KEEP_NL if keep_newlines else _UNSAFE)


def _echo_safe(text: str) -> None:
    typer.echo(terminal_safe(text))


QUIET = False
"""Set by `--quiet`: no report on stdout (except `--json`), no progress; errors still shown."""


def _progress_line(rt: Runtime) -> Callable[[str], None]:
    """Return a progress printer (the lines say what happened: see `notify.step_note`)."""

    def say(line: str) -> None:
        if QUIET:
            return
        _echo_err(f"  … {line}")

    return say


def _runtime(inventory: str | None, *, progress: bool = True) -> Runtime:
    from rotator import inventory as inv
    from rotator.paths import inventory_path
    from rotator.runtime import Runtime

    rt = Runtime(inventory=inv.load(inventory_path(inventory)))
    if progress:
        printer = _progress_line(rt)
        rt.progress = lambda line: _on_terminal(printer, line)
    return rt


def _on_terminal(printer: Callable[[str], None], line: str) -> None:
    # Progress is for a person watching; cron's log gets the summary (or ROTATOR_PROGRESS=1).
    if sys.stderr.isatty() or os.environ.get("ROTATOR_PROGRESS") == "1":
        printer(line)


def _engine(inventory: str | None) -> Engine:
    from rotator.engine import Engine

    return Engine(_runtime(inventory))


def _json(data: Any) -> None:
    from rotator.secret import MaskingJSONEncoder

    typer.echo(json.dumps(data, indent=2, cls=MaskingJSONEncoder, default=str))


def _read_value(prompt: str) -> Secret:
    """Read a value from a hidden prompt, or stdin when piped; never from argv."""
    from rotator.secret import read_secret_input

    try:
        if sys.stdin.isatty():
            import getpass

            return read_secret_input(getpass.getpass(f"{prompt} (input hidden): "))
        # Bytes, decoded strictly: under a C locale Python would smuggle bad bytes through
        # as surrogates, and they would fail far from here.
        return read_secret_input(sys.stdin.buffer.read().decode("utf-8"))
    except UnicodeDecodeError:
        raise BadInputError(
            "the value read is not UTF-8 text; paste the credential itself (a credential is "
            "text), not a file's bytes"
        ) from None


def local_time(value: datetime | str | None, tz: tzinfo, *, seconds: bool = False) -> str:
    """Show a time in `tz`, the inventory's zone, with the zone's name; "-" for none.

    Times are stored, and printed by `--json`, in UTC (ISO 8601); a person reads them in
    the inventory's `settings.time_zone` (docs/inventory.md). A string is ISO 8601, and a
    naive time is UTC, as stored.
    """
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        from datetime import UTC

        value = value.replace(tzinfo=UTC)
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")


def _outcomes(outcomes: list[Outcome], as_json: bool, tz: tzinfo | None = None) -> int:
    """Print outcomes (times in `tz`, the inventory's zone; UTC in JSON); return the code."""
    if as_json:
        _json([o.__dict__ for o in outcomes])
    else:
        for o in outcomes:
            steps = ", ".join(o.steps) if o.steps else "-"
            until = ""
            if o.until and tz is not None:
                until = f" until {local_time(o.until, tz)}"
            elif o.until:
                until = f" until {o.until.isoformat()}"
            typer.echo(f"{o.unit:<50} {o.status:<8} {steps:<28} {o.message}{until}")
        counts: dict[str, int] = {}
        for o in outcomes:
            counts[o.status] = counts.get(o.status, 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing due"
        typer.echo(f"summary: {summary}")
    return 1 if any(o.status in ("failed", "retrying") for o in outcomes) else 0


# ------------------------------------------------------------------------- setup
@app.command()
def init(as_json: JsonOpt = False) -> None:
    """Write a new master key, audit signing key and fingerprint key (0600); never overwrite."""
    from rotator.keys import init_keys

    written = init_keys()
    if as_json:
        _json({"written": [str(p) for p in written]})
        return
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo("Back up the master key somewhere safe: without it no stored value can be read.")


@app.command()
def check(
    inventory: InventoryOpt = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Only validate the file; do not look for credentials.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Validate the inventory and (unless --offline) that every credential the tool needs exists."""
    from dataclasses import asdict

    rt = _runtime(inventory)
    inv = rt.inventory
    report: dict[str, Any] = {
        "inventory": str(inv.path),
        "environments": len(inv.environments),
        "secrets": len(inv.secrets),
        "valid": True,
        "network": asdict(inv.network),
        "problems": [],
    }
    if not as_json:
        typer.echo(
            f"inventory {inv.path}: {len(inv.environments)} environment(s), "
            f"{len(inv.secrets)} secret(s): valid"
        )
        typer.echo(inv.network.describe())
    if offline:
        if as_json:
            _json(report)
        return
    from rotator.errors import KeyMaterialError
    from rotator.keys import load_audit_key, load_fingerprint_key, load_master_key

    problems = rt.credentials.missing()
    key_problems: list[KeyMaterialError] = []
    for loader in (load_master_key, load_fingerprint_key, load_audit_key):
        try:
            loader()
        except KeyMaterialError as exc:
            key_problems.append(exc)
    report["problems"] = [*problems, *map(str, key_problems)]
    if as_json and report["problems"]:
        report["valid"] = False
        _json(report)
    for p in report["problems"]:
        _echo_err(f"  - {p}")
    if key_problems:
        # The same code every other command gives for the same key (5), not 2.
        raise KeyMaterialError(
            f"{len(problems) + len(key_problems)} credential(s) or key(s) missing or unsafe"
        )
    if problems:
        raise BadInputError(f"{len(problems)} credential(s) or key(s) missing")
    from rotator.rewrap import check_key_ids

    stored = check_key_ids(rt.store, rt.master_key)
    own_lines, own_warnings = _own_check(rt)
    if as_json:
        _json(
            {
                **report,
                "stored_values": stored,
                "master_key_id": rt.master_key.key_id,
                "own_credentials": own_lines,
                "warnings": own_warnings,
            }
        )
        return
    for line in own_lines:
        _echo_safe(line)
    for warning in own_warnings:
        _echo_err(f"warning: {warning}")
    typer.echo(
        f"credentials and keys: present; {stored} stored value(s) under master key "
        f"{rt.master_key.key_id}"
    )


def _own_check(rt: Runtime) -> tuple[list[str], list[str]]:
    """Where each own credential comes from, its cycle and privileges (rotator/own/check)."""
    from rotator.engine import Engine
    from rotator.own.check import report as own_report

    return own_report(Engine(rt))


@app.command("import")
def import_(
    secret: Annotated[
        str, typer.Argument(help="Secret name from the inventory.", autocompletion=_complete_secret)
    ],
    env: EnvOpt = None,
    ref: Annotated[
        str | None,
        typer.Option("--ref", help="The provider's id of this credential (not the value)."),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Correct a wrong recorded current value or reference (audited; refused "
            "while a rotation is in flight).",
        ),
    ] = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify",
            help="Ask the provider that it accepts the value, and that it is the --ref "
            "given where the provider can tell (default). --no-verify for a host that "
            "cannot reach the provider; the audit event says the value was not verified.",
        ),
    ] = True,
    inventory: InventoryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record the value in use today as current (read from a hidden prompt or stdin)."""
    from rotator.commands import import_value

    engine = _engine(inventory)
    unit = engine.unit(secret, env)
    _audit_ready(engine.rt.inventory)
    value = _read_value(f"current value of {unit.label}")
    try:
        vid = import_value(engine, unit, value, ref, replace=replace, verify=verify)
    except RotatorError as exc:
        recorded = _recorded_as_current(engine, unit, value)
        if recorded is None:
            raise
        # The value is in the database; what failed came after (the closing checkpoint or
        # its copy to the sink). Say so: "not taken" would send the person to import again.
        _echo_err(
            f"error: {unit.label}: the value WAS recorded as current (version {recorded}); "
            f"do not import it again. After that: {exc}"
        )
        raise typer.Exit(exc.exit_code) from None
    if as_json:
        _json({"secret": unit.spec.name, "environment": _env_of(unit), "version": vid})
        return
    typer.echo(f"{unit.label}: recorded as current (version {vid})")


def _audit_ready(inv: Inventory) -> None:
    """Check, before anything is written, that the command's audit can be completed.

    The signing key must load (exit 5) and the external sink must be a regular file this
    user can append to, or creatable (exit 9): found only after the commit, either failure
    would leave the action recorded behind an error that says it was not taken.
    """
    from audit.checkpoint import sink_last_size
    from audit.verify import CheckpointError
    from rotator.errors import AuditError
    from rotator.keys import load_audit_key

    load_audit_key()
    sink = _sink_path(inv.audit)
    if sink is None:
        return
    fix = "fix audit.external_sink in the inventory (or the file); nothing was recorded"
    try:
        sink_last_size(sink)
    except (OSError, CheckpointError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise AuditError(
            f"the external checkpoint sink {sink} cannot be used ({why}); {fix}"
        ) from None
    where = sink
    while not where.exists() and where != where.parent:
        where = where.parent
    usable = (
        os.access(where, os.W_OK)
        if where == sink
        else where.is_dir() and os.access(where, os.W_OK | os.X_OK)
    )
    if not usable:
        what = "cannot be appended to" if where == sink else f"cannot be created in {where}"
        raise AuditError(f"the external checkpoint sink {sink} {what}; {fix}")


def _recorded_as_current(engine: Engine, unit: Any, value: Secret) -> str | None:
    """Return the id of the current version if it holds `value`, else None (a fresh read)."""
    from rotator import repository as repo

    try:
        fingerprint = engine.rt.fingerprint(value)
        with engine.rt.store.read() as s:
            record = repo.find_secret(s, unit.spec.name, unit.scope_env)
            current = repo.version_in(s, record.id or 0, repo.CURRENT) if record else None
    except Exception:  # the store itself failed: nothing can be said, the error stands
        return None
    if current is None or current.fingerprint != fingerprint:
        return None
    return str(current.id)


@app.command()
def status(inventory: InventoryOpt = None, as_json: JsonOpt = False) -> None:
    """Show every secret: provider, scope, age of its value, rotation in flight, next step."""
    from rotator import clock
    from rotator import inventory as inv_mod
    from rotator.paths import inventory_path
    from rotator.store.status import read_status

    inv = inv_mod.load(inventory_path(inventory))
    # A current SQLite file is read with sqlite3 alone (no SQLAlchemy: issue 19's start-up
    # goal); anything else, or a rotation whose gate needs the machine, takes the full path.
    rows = read_status(inv, clock.now())
    if rows is None:
        from rotator.commands import status as status_rows

        rows = status_rows(_engine(inventory))
    if as_json:
        _json(rows)
        return
    typer.echo(f"{'SECRET':<46} {'PROVIDER':<13} {'SCOPE':<11} {'AGE':>7}  ROTATION")
    for row in rows:
        age = f"{row['age_days']:.0f}d" if row["age_days"] is not None else "none"
        flight = (
            "; ".join(
                f"{r['kind']} {r['cycle'] or ''} {r['state']}"
                + (" NEEDS A PERSON" if r["needs_person"] else "")
                for r in row["rotations"]
            )
            or "-"
        )
        typer.echo(
            f"{row['secret']:<46} {row['provider']:<13} {row['scope']:<11} {age:>7}  {flight}"
        )
    for row in rows:
        for r in row["rotations"]:
            if r.get("instruction"):
                label = row["secret"] + ("" if row["scope"] == "shared" else f"[{row['scope']}]")
                _echo_safe(f"\n{label}: " + r["instruction"])
    for row in rows:
        for failure in row.get("notification_failures", []):
            typer.echo(
                f"notification channel {failure['channel']} failed at "
                f"{local_time(failure['time'], inv.tz)}: {failure['error']}"
            )


# ------------------------------------------------------------------------- sequences
@app.command()
def run(
    inventory: InventoryOpt = None,
    as_json: JsonOpt = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would run now (same as `rotate plan`).")
    ] = False,
    no_delay: Annotated[
        bool,
        typer.Option(
            "--no-delay",
            help="Start at once; without it a run not on a terminal first waits a random "
            "0-5 minutes (announced on stderr) so many hosts do not hit providers together.",
        ),
    ] = False,
) -> None:
    """Do every step due now (the cron entry); exits 1 if any secret failed."""
    if dry_run:
        plan(inventory=inventory, at=None, as_json=as_json)
        return
    from rotator.runlock import RunLock, startup_delay

    with RunLock():
        # One line on stderr, even under cron: a silent sleep of minutes looks like a hang.
        startup_delay(0 if no_delay else 300.0, say=None if QUIET else _echo_err)
        engine = _engine(inventory)
        own_results = _own_due(engine, as_json)
        outcomes = engine.run()
        code = _outcomes(outcomes, as_json, engine.rt.inventory.tz)
        if not as_json:
            pending_steps(engine, outcomes)
        code = code or (1 if any(r["status"] != "done" for r in own_results) else 0)
        if code == 0:
            from rotator.metrics import record_successful_run

            record_successful_run(engine)
    raise typer.Exit(code)


def _own_due(engine: Engine, as_json: bool) -> list[dict[str, Any]]:
    """Rotate the tool's own credentials that are due, before the app's (rotator/own)."""
    from rotator.own.schedule import run_due

    results = run_due(engine)
    for r in results:
        line = f"own credential {r['credential']}: {r['status']}: {r['message']}"
        _echo_err(line) if as_json or r["status"] != "done" else typer.echo(line)
    return results


@app.command()
def plan(
    inventory: InventoryOpt = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help="Local time in the inventory's zone, e.g. 2027-03-10T02:30."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Say what `rotate run` would do at a time, changing nothing."""
    from rotator.commands import plan as plan_lines

    engine = _engine(inventory)
    when = _parse_at(at, engine) if at else engine.rt.clock()
    lines = plan_lines(engine, when)
    if as_json:
        _json([line.__dict__ for line in lines])
        return
    typer.echo(f"plan at {when.astimezone(engine.rt.inventory.tz).isoformat()}")
    for line in lines:
        _plan_line(line, engine)


def _plan_line(line: PlanLine, engine: Engine) -> None:
    until = ""
    if line.until:
        until = f" (until {local_time(line.until, engine.rt.inventory.tz)})"
    typer.echo(f"{line.unit:<46} {line.state:<16} {line.action:<9} {line.reason}{until}")


def _parse_at(text: str, engine: Engine) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadInputError(
            f"--at {text!r} is not a date-time; expected e.g. 2027-03-10T02:30"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=engine.rt.inventory.tz)
    return value


@app.command()
def emergency(
    secret: Annotated[
        str | None,
        typer.Argument(
            help="The compromised secret (or select with --all...).",
            autocompletion=_complete_secret,
        ),
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="What leaked and how (recorded).")] = "",
    env: EnvOpt = None,
    every: Annotated[bool, typer.Option("--all", help="Every secret of the inventory.")] = False,
    provider: Annotated[
        str | None, typer.Option("--provider", help="Every secret of this provider.")
    ] = None,
    in_env: Annotated[
        str | None, typer.Option("--in-env", help="Every secret deployed to this environment.")
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", help="Concurrent steps of a mass emergency.", min=1)
    ] = 16,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    again: Annotated[
        bool,
        typer.Option(
            "--again", help="Start another emergency even if one completed within the hour."
        ),
    ] = False,
    own: Annotated[
        str | None,
        typer.Option(
            "--own",
            help="A leaked credential of the tool itself: cloudflare (the token is rolled, "
            "the new value stored first) or google (a new service-account key, the old one "
            "deleted at once); the old one proved refused, a person notified.",
        ),
    ] = None,
    inventory: InventoryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rotate a compromised secret now: generate, stage, promote, revoke, notify.

    Running it again joins the emergency in flight, or resumes one that stopped.
    """
    from rotator.commands import (
        EmergencyFinished,
        drive,
        emergency_many,
        select_units,
        start_emergency,
    )

    engine = _engine(inventory)
    if own is not None:
        from rotator.own.cli import own_emergency

        own_emergency(
            engine, own, secret, reason, yes=yes or not sys.stdin.isatty(), as_json=as_json
        )
        return
    if secret is None:
        units = select_units(engine, every=every, provider=provider, environment=in_env)
        if not yes and sys.stdin.isatty():
            typer.confirm(
                f"Rotate {len(units)} secrets now and revoke their current credentials?",
                abort=True,
            )
        engine.rt.progress = _progress_line(engine.rt)
        outcomes = emergency_many(engine, units, reason, workers=workers)
        code = _outcomes(outcomes, as_json, engine.rt.inventory.tz)
        if not as_json:
            pending_steps(engine, outcomes)
        raise typer.Exit(code)
    if every or provider or in_env:
        raise BadInputError("name one SECRET, or select with --all/--provider/--in-env; not both")
    unit = engine.unit(secret, env)
    if not yes and sys.stdin.isatty():
        typer.confirm(
            f"Rotate {unit.label} now and revoke every current credential of it?", abort=True
        )
    engine.rt.progress = _progress_line(engine.rt)
    try:
        rotation = start_emergency(engine, unit, reason, again=again)
        if not QUIET:
            _echo_err(f"emergency {rotation} for {unit.label}: assessed")
        outcome = drive(engine, rotation)
    except EmergencyFinished as done:
        typer.echo(str(done))
        raise typer.Exit(0) from None
    except KeyboardInterrupt:
        _echo_err(
            f"interrupted: the state is safe (each step is recorded before and after it "
            f"runs); run `rotate emergency {unit.spec.name}{unit.env_flag} --reason ...` "
            "again to resume it"
        )
        raise typer.Exit(130) from None
    engine.checkpoint()
    code = _outcomes([outcome], as_json, engine.rt.inventory.tz)
    if not as_json:  # --json prints one document on stdout, nothing after it
        pending_steps(engine, [outcome])
    if outcome.status == "claimed":
        # Security staff must not read "done" while another runner still holds the work.
        from rotator.errors import ClaimedElsewhereError

        code = ClaimedElsewhereError.exit_code
    raise typer.Exit(code)


def _env_of(unit: Any) -> str | None:
    return None if unit.scope_env == "shared" else str(unit.scope_env)


def _confirm(yes: bool, question: str) -> None:
    """Ask on a terminal unless --yes; scripts (no terminal) pass --yes or are not asked."""
    if not yes and sys.stdin.isatty():
        typer.confirm(question, abort=True)


def pending_steps(engine: Engine, outcomes: list[Outcome]) -> None:
    """Print each person's step the outcomes left pending: what, by when, the exact command.

    One status read for all of them; the instruction ends with the command to run.
    """
    wanted = {o.unit for o in outcomes if o.status in ("person", "failed")}
    if QUIET or not wanted:
        return
    from rotator.commands import status as status_rows

    inv = engine.rt.inventory
    for row in status_rows(engine):
        label = row["secret"] + ("" if row["scope"] == "shared" else f"[{row['scope']}]")
        if label not in wanted:
            continue
        for r in row["rotations"]:
            if r.get("instruction"):
                _echo_safe(f"\n{label}: a person is needed ({r['state']}); {_due(r, inv)}")
                _echo_safe(r["instruction"])


def _due(rotation: dict[str, Any], inv: Inventory) -> str:
    """When a person's step is due: the cycle's month gates, the window, or now."""
    from rotator import machine as m

    state, cycle = rotation["state"], rotation["cycle"]
    if state == m.FAILED:
        return "nothing moves until the cause is fixed"
    if rotation["kind"] != m.QUARTERLY or not cycle:
        return "due now: the emergency waits for it"
    from schedules import month_gate, parse_cycle_id, parse_window

    c = parse_cycle_id(cycle)

    def gate(month: int) -> str:
        return local_time(month_gate(c, month, inv.tz), inv.tz)

    if state == m.AWAITING_SUPPLY:
        return (
            f"due in month 1 of cycle {cycle}, before month 2 opens {gate(2)}, so staging "
            "soaks before production moves in month 3"
        )
    if state == m.VALIDATED:
        window = parse_window(
            list(inv.window.days),
            inv.window.start.strftime("%H:%M"),
            inv.window.end.strftime("%H:%M"),
            inv.time_zone,
        ).describe()
        return f"production moves in a maintenance window of month 3 ({window}), from {gate(3)}"
    if state == m.AWAITING_REVOKE:
        return f"due in month 4 of cycle {cycle}, from {gate(4)}"
    if state == m.REVOKED:
        return f"due now: the review completes cycle {cycle}"
    return "due now"


@app.command()
def supply(
    secret: Annotated[
        str, typer.Argument(help="Secret awaiting a new value.", autocompletion=_complete_secret)
    ],
    env: EnvOpt = None,
    inventory: InventoryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Hand over a new value created by a person (hidden prompt or stdin, never argv)."""
    from rotator.commands import supply as supply_value

    engine = _engine(inventory)
    unit = engine.unit(secret, env)
    value = _read_value(f"new value of {unit.label}")
    outcome = supply_value(engine, unit, value)
    code = _outcomes([outcome], as_json, engine.rt.inventory.tz)
    if not as_json:
        pending_steps(engine, [outcome])
    raise typer.Exit(code)


@app.command()
def confirm(
    secret: Annotated[
        str,
        typer.Argument(help="Secret whose manual step is done.", autocompletion=_complete_secret),
    ],
    step: Annotated[str, typer.Option("--step", help="The manual step done: revoke.")],
    env: EnvOpt = None,
    inventory: InventoryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Say a manual step is done; the tool verifies it (the old credential is refused)."""
    from rotator.commands import confirm as confirm_step

    engine = _engine(inventory)
    outcome = confirm_step(engine, engine.unit(secret, env), step)
    code = _outcomes([outcome], as_json, engine.rt.inventory.tz)
    if not as_json:
        pending_steps(engine, [outcome])
    raise typer.Exit(code)


@app.command()
def approve(
    secret: Annotated[
        str,
        typer.Argument(help="Secret whose promotion is approved.", autocompletion=_complete_secret),
    ],
    env: EnvOpt = None,
    note: Annotated[str, typer.Option("--note", help="Why it is approved.")] = "",
    inventory: InventoryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record the stakeholder approval that promotion to production needs."""
    from rotator.commands import approve as approve_rotation

    engine = _engine(inventory)
    unit = engine.unit(secret, env)
    rid = approve_rotation(engine, unit, note)
    if as_json:
        _json({"secret": unit.spec.name, "environment": _env_of(unit), "rotation": rid})
        return
    typer.echo(f"approved rotation {rid}")


@app.command()
def review(
    secret: Annotated[
        str, typer.Argument(help="Secret whose cycle is reviewed.", autocompletion=_complete_secret)
    ],
    note: Annotated[str, typer.Option("--note", help="What the security review checked.")],
    env: EnvOpt = None,
    inventory: InventoryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record the security review that completes a quarterly cycle."""
    from rotator.commands import review as review_rotation

    engine = _engine(inventory)
    unit = engine.unit(secret, env)
    rid = review_rotation(engine, unit, note)
    if as_json:
        _json({"secret": unit.spec.name, "environment": _env_of(unit), "rotation": rid})
        return
    typer.echo(f"reviewed; rotation {rid} completed")


@app.command()
def rollback(
    secret: Annotated[
        str, typer.Argument(help="Secret to roll back.", autocompletion=_complete_secret)
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")],
    env: EnvOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    inventory: InventoryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Before revoke: put the previous value back everywhere and revoke the new one."""
    from rotator.commands import rollback as do_rollback

    engine = _engine(inventory)
    unit = engine.unit(secret, env)
    _confirm(
        yes,
        f"Put the previous value of {unit.label} back in every environment and revoke the "
        "new credential?",
    )
    outcome = do_rollback(engine, unit, reason)
    code = _outcomes([outcome], as_json, engine.rt.inventory.tz)
    if not as_json:
        pending_steps(engine, [outcome])
    raise typer.Exit(code)


@app.command()
def abort(
    secret: Annotated[
        str,
        typer.Argument(help="Secret whose rotation is abandoned.", autocompletion=_complete_secret),
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")],
    env: EnvOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    inventory: InventoryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Before promote: put staging back and revoke the pending credential."""
    from rotator.commands import rollback as do_rollback

    engine = _engine(inventory)
    unit = engine.unit(secret, env)
    _confirm(yes, f"Abandon the rotation of {unit.label}: put staging back and revoke the new one?")
    outcome = do_rollback(engine, unit, reason, abort=True)
    code = _outcomes([outcome], as_json, engine.rt.inventory.tz)
    if not as_json:
        pending_steps(engine, [outcome])
    raise typer.Exit(code)


@app.command()
def resume(
    secret: Annotated[
        str, typer.Argument(help="Secret whose rotation failed.", autocompletion=_complete_secret)
    ],
    env: EnvOpt = None,
    inventory: InventoryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Retry a rotation that failed after its retry budget, once the cause is fixed."""
    from rotator.commands import resume as resume_rotation

    engine = _engine(inventory)
    outcome = resume_rotation(engine, engine.unit(secret, env))
    code = _outcomes([outcome], as_json, engine.rt.inventory.tz)
    if not as_json:
        pending_steps(engine, [outcome])
    raise typer.Exit(code)


@app.command()
def show(
    secret: Annotated[str, typer.Argument(help="Secret to show.", autocompletion=_complete_secret)],
    env: EnvOpt = None,
    inventory: InventoryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a secret's rotations, versions and steps with dates and actors."""
    from rotator.commands import show as show_unit

    engine = _engine(inventory)
    data = show_unit(engine, engine.unit(secret, env))
    if as_json:
        _json(data)
        return
    tz = engine.rt.inventory.tz

    def at(value: str | None) -> str:
        return local_time(value, tz, seconds=True)

    _echo_safe(f"{data['secret']} ({data['scope']}); times in {engine.rt.inventory.time_zone}")
    _echo_safe("versions:")
    for v in data["versions"]:
        _echo_safe(
            f"  {v['id']}  {v['state']:<9} created {at(v['created_at'])}  "
            f"promoted {at(v['promoted_at'])}  revoked {at(v['revoked_at'])}"
        )
    _echo_safe("rotations:")
    for r in data["rotations"]:
        _echo_safe(f"  {r['id']}  {r['kind']} {r['cycle'] or ''} {r['state']}  by {r['actor']}")
        for st in r["steps"]:
            _echo_safe(
                f"      {at(st['started_at'])}  {st['step']:<9} {st['status']:<16} {st['actor']}"
            )
        for a in r["approvals"]:
            _echo_safe(f"      {at(a['at'])}  {a['kind']:<9} {a['actor']}: {a['note']}")
        if r.get("instruction"):
            _echo_safe("      needs a person: " + r["instruction"].replace("\n", "\n      "))
        for _env, verdicts in sorted((r.get("signals") or {}).items()):
            for v in verdicts:  # each signal's last figures, baseline vs now (issue 15)
                _echo_safe(
                    f"      signal {v['environment']} {v['signal']} {v['status']}: {v['reason']}"
                )
    if data.get("serving"):
        typer.echo("serving (what each target holds, by version):")
        for where, held in data["serving"].items():
            _echo_safe(f"  {where:<60} {', '.join(held) or '-'}")


@app.command()
def calendar(
    year: Annotated[
        int | None,
        typer.Option("--year", help="Year to show [default: this year].", min=1, max=9998),
    ] = None,
    inventory: InventoryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a year: each cycle, its month gates and the production windows in month 3."""
    from rotator import clock
    from rotator import inventory as inv_mod
    from rotator.paths import inventory_path
    from schedules import parse_window, render_year, year_as_dict

    inv = inv_mod.load(inventory_path(inventory))
    window = parse_window(
        list(inv.window.days),
        inv.window.start.strftime("%H:%M"),
        inv.window.end.strftime("%H:%M"),
        inv.time_zone,
    )
    y = year if year is not None else clock.now().astimezone(inv.tz).year
    if as_json:
        _json(year_as_dict(y, inv.quarter_start_months, inv.tz, window))
    else:
        typer.echo(render_year(y, inv.quarter_start_months, inv.tz, window))


@app.command()
def providers(as_json: JsonOpt = False) -> None:
    """List the installed provider plugins and what each can do without a person."""
    from providers.registry import describe, load_providers

    rows = [describe(cls) for cls in load_providers().values()]
    if as_json:
        _json(rows)
        return
    typer.echo(
        f"{'PROVIDER':<14} {'GENERATE':<9} {'REVOKE':<9} {'VERIFIED':<9} {'MAX LIVE':<9} SUMMARY"
    )
    for row in rows:
        generate = "auto" if row["automated_generate"] else "person"
        revoke = "auto" if row["automated_revoke"] else "person"
        verified = "yes" if row["verifiable_revocation"] else "no"
        most = row["max_live_credentials"] or "-"
        typer.echo(
            f"{row['name']:<14} {generate:<9} {revoke:<9} {verified:<9} {most!s:<9} "
            f"{row['summary']}"
        )


@app.command()
def metrics(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write this file atomically (node_exporter textfile collector), not stdout.",
        ),
    ] = None,
    inventory: InventoryOpt = None,
) -> None:
    """Print Prometheus metrics: per secret age, next gate, state, failures; the last run."""
    from rotator.metrics import render_metrics, write_metrics_file

    text = render_metrics(_engine(inventory))
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_metrics_file(text, out)


@app.command()
def demo(
    fast: Annotated[
        bool, typer.Option("--fast", help="Walk one quarter instead of a year (for the tests).")
    ] = False,
    faults: Annotated[str, typer.Option("--faults", help="Sandbox fault profile.")] = "default",
) -> None:
    """Run a year of rotations against the built-in sandbox and verify the audit trail."""
    from datetime import date

    from rotator.demo import next_steps, run_demo, summary, summary_table

    if fast:
        result = run_demo(end=date(2027, 4, 30), emergency_on=date(2027, 2, 10), faults=faults)
    else:
        result = run_demo(faults=faults)
    typer.echo(summary(result))
    typer.echo("\n" + summary_table(result))
    steps = next_steps(result)
    if steps:
        typer.echo("\n" + steps)
    if not (result.verified and result.production_health_ok):
        raise typer.Exit(1)


sandbox_app = typer.Typer(
    help="Run the provider emulator alone (without a command), and act in it as the person "
    "(`console`).\n\n\b\nExamples:\n  rotate sandbox --port 8787 --workdir /tmp/sb\n"
    "  rotate sandbox console stripe new-key | rotate supply BANDOFBAKERS_STRIPE_SECRET_KEY",
    invoke_without_command=True,
)
app.add_typer(sandbox_app, name="sandbox")
console_app = typer.Typer(
    help="Do in the running sandbox what a person does in the Stripe Dashboard or the Google "
    "console. A new value goes to stdout alone, so it pipes into `rotate supply`.",
    no_args_is_help=True,
)
sandbox_app.add_typer(console_app, name="console")
stripe_console = typer.Typer(help="The Stripe Dashboard's API keys page.", no_args_is_help=True)
google_console = typer.Typer(
    help="The Google console's OAuth client secrets.", no_args_is_help=True
)
console_app.add_typer(stripe_console, name="stripe")
console_app.add_typer(google_console, name="google")
signals_console = typer.Typer(
    help="What Rollbar and Logflare see: raise an environment's error rate, take one down.",
    no_args_is_help=True,
)
console_app.add_typer(signals_console, name="signals")

SANDBOX_URL_ENV = "ROTATOR_SANDBOX_URL"
UrlOpt = Annotated[
    str,
    typer.Option(
        "--url",
        envvar=SANDBOX_URL_ENV,
        help=f"The running sandbox [default: ${SANDBOX_URL_ENV}, else http://127.0.0.1:8787].",
        show_default=False,
    ),
]


@sandbox_app.callback(invoke_without_command=True)
def sandbox(
    ctx: typer.Context,
    port: Annotated[
        int, typer.Option("--port", help="Port on 127.0.0.1 (0: any free port).")
    ] = 8787,
    faults: Annotated[str, typer.Option("--faults", help="Fault profile.")] = "default",
    workdir: Annotated[
        Path, typer.Option("--workdir", help="Where to write the inventory and key file.")
    ] = Path("rotator-sandbox"),
) -> None:
    """Run the sandbox standalone and print how to point rotator at it."""
    if ctx.invoked_subcommand is not None:
        return
    import signal
    import threading

    from rotator.errors import OutputFileError
    from rotator.safefile import ensure_private_dir, write_output
    from rotator.sandbox import Sandbox
    from rotator.sandbox.inventory import sandbox_environment, sandbox_inventory
    from rotator.sandbox.overrides import inventory_overrides

    where = workdir.resolve()
    box = Sandbox(port=port, faults=faults)
    box.start()
    try:
        try:
            ensure_private_dir(
                where, "sandbox work directory", OutputFileError, "or pass --workdir another"
            )
            seeded = box.seed_bandofbakers()
            inventory_file = sandbox_inventory(box, where, notify_email=False)
            values = where / "seeded-values.txt"
            write_output(
                values,
                "".join(f"{label}\t{v.ref}\t{v.value}\n" for label, v in seeded.items()),
            )
            environment = sandbox_environment(box)
            # One 0600 file per credential (cloudflare-token, rollbar-token, logflare-key).
            token_files = {
                name: where / name.lower().removeprefix("rotator_sandbox_").replace("_", "-")
                for name in environment
            }
            for name, token in environment.items():
                write_output(token_files[name], token)
        except OSError as exc:
            raise OutputFileError(
                f"cannot write the sandbox's files in {where}: {exc.strerror} "
                f"({exc.filename or where}); pass --workdir a directory you can write"
            ) from None
        typer.echo(f"sandbox listening on {box.base_url} (faults: {faults})")
        typer.echo("inventory overrides that point at it:\n")
        typer.echo(inventory_overrides(box.base_url))
        typer.echo(f"a complete inventory: {inventory_file}")
        typer.echo(f"the seeded values to `rotate import` (0600): {values}")
        for name, file in token_files.items():
            typer.echo(f'export {name}="$(cat {file})"')
        typer.echo(_sandbox_next_steps(box.base_url, inventory_file, values))
        typer.echo("stop with Ctrl-C")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        import contextlib

        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    finally:
        box.stop()


def _sandbox_next_steps(base_url: str, inventory_file: Path, values: Path) -> str:
    return f"""
In another shell, import the values in use "today" and act as the person:

  export ROTATOR_INVENTORY={inventory_file} {SANDBOX_URL_ENV}={base_url}
  rotate init
  while IFS=$'\\t' read -r label ref value; do
    secret=${{label%@*}}; env=; [ "$label" != "$secret" ] && env="--env ${{label#*@}}"
    printf '%s\\n' "$value" | rotate import "$secret" --ref "$ref" $env
  done < {values}
  rotate run --no-delay
  rotate sandbox console stripe new-key | rotate supply BANDOFBAKERS_STRIPE_SECRET_KEY
  rotate sandbox console google new-secret --env staging | \\
    rotate supply GOOGLE_CLIENT_SECRET --env staging
  rotate sandbox console stripe expire-old        # month 4: the person expires the old key
  rotate confirm BANDOFBAKERS_STRIPE_SECRET_KEY --step revoke
(`rotate sandbox console --help` lists every console command; docs/operator-guide.md.)"""


def _console(url: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    import httpx

    from rotator.errors import ProviderRefusedError, RetryLaterError

    try:
        response = httpx.request(method, url.rstrip("/") + path, json=body, timeout=10.0)
    except httpx.TransportError as exc:
        raise RetryLaterError(
            f"no sandbox answers at {url} ({type(exc).__name__}); start `rotate sandbox` or "
            f"set {SANDBOX_URL_ENV} to the URL it printed"
        ) from None
    if response.status_code >= 400:
        try:
            why = response.json().get("error", "")
        except ValueError:
            why = ""
        raise ProviderRefusedError(
            f"the sandbox console refused: {why or 'no reason given'}",
            provider="sandbox",
            operation=path,
            status=response.status_code,
        )
    return response.json()


_DEFAULT_SANDBOX = "http://127.0.0.1:8787"


@signals_console.command("error-rate")
def console_signals_error_rate(
    env: Annotated[str, typer.Option("--env", help="The environment (staging, production).")],
    rate: Annotated[
        float, typer.Option("--rate", help="Share of errors from now on, e.g. 0.05 for 5%.")
    ],
    critical: Annotated[
        bool, typer.Option("--critical", help="Also report a new critical Rollbar item.")
    ] = False,
    url: UrlOpt = _DEFAULT_SANDBOX,
) -> None:
    """Set an environment's error rate in Rollbar and Logflare from now on (a bad deploy)."""
    body = _console(
        url, "POST", f"/console/signals/{env}/error-rate", {"rate": rate, "critical": critical}
    )
    typer.echo(f"{body['environment']}: error rate {body['rate']:.2%} since {body['since']}")


@signals_console.command("outage")
def console_signals_outage(
    source: Annotated[str, typer.Argument(help="rollbar or logflare.")],
    up: Annotated[bool, typer.Option("--up", help="End the outage.")] = False,
    url: UrlOpt = _DEFAULT_SANDBOX,
) -> None:
    """Make Rollbar or Logflare answer 503 (or answer again with --up)."""
    body = _console(url, "POST", f"/console/signals/{source}/outage", {"down": not up})
    typer.echo(f"{body['source']}: {'down' if body['down'] else 'answering'}")


@stripe_console.command("new-key")
def console_stripe_new_key(url: UrlOpt = _DEFAULT_SANDBOX) -> None:
    """Create a live secret key (its value on stdout, its id on stderr).

    Example: rotate sandbox console stripe new-key | rotate supply BANDOFBAKERS_STRIPE_SECRET_KEY
    """
    body = _console(url, "POST", "/console/stripe/keys", {"type": "secret", "live": True})
    _echo_err(f"created Stripe key {body['id']}")
    typer.echo(body["secret"])


@stripe_console.command("keys")
def console_stripe_keys(url: UrlOpt = _DEFAULT_SANDBOX) -> None:
    """List the Stripe keys (ids and state; never a value)."""
    for key in _console(url, "GET", "/console/stripe/keys")["keys"]:
        typer.echo("  ".join(f"{k}={v}" for k, v in sorted(key.items()) if k != "secret"))


@stripe_console.command("expire")
def console_stripe_expire(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `keys`).")],
    url: UrlOpt = _DEFAULT_SANDBOX,
) -> None:
    """Expire one Stripe key now, as the Dashboard's "Expire key" does."""
    _console(url, "POST", f"/console/stripe/keys/{key_id}/expire", {"delay_seconds": 0})
    typer.echo(f"expired Stripe key {key_id}")


@stripe_console.command("expire-old")
def console_stripe_expire_old(url: UrlOpt = _DEFAULT_SANDBOX) -> None:
    """Expire every live Stripe secret key but the newest (the month-4 instruction)."""
    keys = [k for k in _console(url, "GET", "/console/stripe/keys")["keys"] if _live(k)]
    keys.sort(key=lambda k: str(k.get("created", "")))
    for key in keys[:-1]:
        _console(url, "POST", f"/console/stripe/keys/{key['id']}/expire", {"delay_seconds": 0})
        typer.echo(f"expired Stripe key {key['id']}")


def _live(key: dict[str, Any]) -> bool:
    return key.get("type") == "secret" and bool(key.get("livemode")) and not key.get("expired")


def _client_id(inventory: str | None, env: str) -> str:
    from rotator import inventory as inv_mod
    from rotator.paths import inventory_path

    inv = inv_mod.load(inventory_path(inventory))
    inv.environment(env)  # an unknown name: exit 2 with did-you-mean
    for spec in inv.secrets.values():
        if spec.provider == "google-oauth":
            client_id = spec.options_for(env).get("client_id")
            if client_id:
                return str(client_id)
    raise BadInputError(f"no google-oauth secret of the inventory has a client_id for {env!r}")


ConsoleEnvOpt = Annotated[
    str, typer.Option("--env", "-e", help="Environment whose OAuth client to change.")
]


@google_console.command("new-secret")
def console_google_new_secret(
    env: ConsoleEnvOpt, inventory: InventoryOpt = None, url: UrlOpt = _DEFAULT_SANDBOX
) -> None:
    """Add a client secret to that environment's OAuth client (value on stdout).

    Example: rotate sandbox console google new-secret --env staging |
    rotate supply GOOGLE_CLIENT_SECRET --env staging
    """
    client_id = _client_id(inventory, env)
    body = _console(url, "POST", f"/console/google/clients/{client_id}/secrets", {})
    _echo_err(f"added secret {body['id']} to {client_id}")
    typer.echo(body["client_secret"])


@google_console.command("secrets")
def console_google_secrets(
    env: ConsoleEnvOpt, inventory: InventoryOpt = None, url: UrlOpt = _DEFAULT_SANDBOX
) -> None:
    """List that environment's client secrets (ids and state; never a value)."""
    client_id = _client_id(inventory, env)
    for sec in _console(url, "GET", f"/console/google/clients/{client_id}/secrets")["secrets"]:
        typer.echo("  ".join(f"{k}={v}" for k, v in sorted(sec.items())))


@google_console.command("retire-old")
def console_google_retire_old(
    env: ConsoleEnvOpt, inventory: InventoryOpt = None, url: UrlOpt = _DEFAULT_SANDBOX
) -> None:
    """Disable and delete every client secret but the newest (the month-4 instruction)."""
    client_id = _client_id(inventory, env)
    base = f"/console/google/clients/{client_id}/secrets"
    secrets = _console(url, "GET", base)["secrets"]
    secrets.sort(key=lambda x: str(x.get("created", "")))
    for sec in secrets[:-1]:
        if sec.get("enabled", True):
            _console(url, "POST", f"{base}/{sec['id']}/disable")
        _console(url, "DELETE", f"{base}/{sec['id']}")
        typer.echo(f"disabled and deleted secret {sec['id']} of {client_id}")


# ------------------------------------------------------------------------- db and keys
@db_app.command("upgrade")
def db_upgrade(as_json: JsonOpt = False) -> None:
    """Bring the database schema up to date (take a backup first)."""
    from rotator.store.db import SCHEMA_REVISION, create, database_url, redacted, upgrade

    url = database_url()
    upgrade(create(url))
    if as_json:
        _json({"database": redacted(url), "schema": SCHEMA_REVISION})
        return
    typer.echo(f"{redacted(url)}: schema at {SCHEMA_REVISION}")


@keys_app.command("rewrap")
def keys_rewrap(
    old_key_file: Annotated[
        Path,
        typer.Option("--old-key-file", help="The master key the values are encrypted under now."),
    ],
    as_json: JsonOpt = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Re-encrypt every stored value under the current master key, in one transaction."""
    from rotator.keys import load_master_key
    from rotator.rewrap import rewrap
    from rotator.store.db import open_store

    _confirm(
        yes,
        f"Re-encrypt every stored value from {old_key_file} to the current master key? Keep a "
        "backup of both keys until a `rotate check` passes",
    )
    new_key = load_master_key()
    count = rewrap(open_store(), load_master_key(old_key_file), new_key)
    if as_json:
        _json({"rewrapped": count, "master_key_id": new_key.key_id})
        return
    typer.echo(f"re-encrypted {count} stored value(s) under the current master key")


# ------------------------------------------------------------------------- audit
def _audit_config(inventory: str | None) -> tuple[str, str, Path | None]:
    """Return origin, key name and external sink from the inventory (defaults if absent)."""
    from rotator import inventory as inv_mod
    from rotator.paths import inventory_path

    path = inventory_path(inventory)
    if not path.exists() and inventory is None:
        return "rotator", "rotator", None
    cfg = inv_mod.load(path).audit
    origin = str(cfg.get("origin", "rotator"))
    return origin, str(cfg.get("key_name", origin)), _sink_path(cfg)


def _sink_path(cfg: Mapping[str, Any]) -> Path | None:
    """The inventory's audit.external_sink, resolved as the engine does (relative: state dir)."""
    from rotator.paths import state_dir

    sink = cfg.get("external_sink")
    if not isinstance(sink, str):
        return None
    path = Path(sink).expanduser()
    return path if path.is_absolute() else state_dir() / path


def _since(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadInputError(
            f"{option} {text!r} is not a date or date-time (e.g. 2027-03-01)"
        ) from None
    if value.tzinfo is None:
        from datetime import UTC

        value = value.replace(tzinfo=UTC)
    return value


@audit_app.command("log")
def audit_log(
    secret: Annotated[str | None, typer.Option("--secret", help="Only this secret.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="From this UTC time (inclusive).")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Before this UTC time.")] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Only this actor.")] = None,
    event_type: Annotated[str | None, typer.Option("--type", help="Only this event type.")] = None,
    inventory: InventoryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List audit events, filtered; read-only. Times in the inventory's zone (UTC in --json)."""
    from audit.entry import decode_entry
    from audit.trail import iter_events
    from rotator.store.db import open_store

    tz = _display_zone(inventory)

    store = open_store()
    with store.read() as s:
        for event in iter_events(
            s,
            secret=secret,
            since=_since(since, "--since"),
            until=_since(until, "--until"),
            actor=actor,
            event_type=event_type,
        ):
            try:
                entry = decode_entry(event.entry)
            except (ValueError, TypeError):
                entry = {"seq": event.seq, "type": "(unreadable entry: run rotate audit verify)"}
            if as_json:
                typer.echo(json.dumps(entry, sort_keys=True))
                continue
            where = entry.get("secret") or "-"
            if entry.get("environment") not in (None, "shared"):
                where += f"[{entry['environment']}]"
            details = " ".join(f"{k}={v}" for k, v in sorted((entry.get("details") or {}).items()))
            _echo_safe(
                f"{entry.get('seq')!s:>7} {_entry_time(entry.get('time'), tz)} "
                f"{entry.get('actor')!s:<24} "
                f"{entry.get('type')!s:<22} {where:<44} {details}"
            )


def _display_zone(inventory: str | None) -> tzinfo:
    """The inventory's zone; UTC when no inventory was named and the default is absent."""
    from datetime import UTC

    from rotator import inventory as inv_mod
    from rotator.paths import inventory_path

    path = inventory_path(inventory)
    if not path.exists() and inventory is None:
        return UTC
    return inv_mod.load(path).tz


def _entry_time(value: object, tz: tzinfo) -> str:
    if not isinstance(value, str):
        return str(value)
    try:
        return local_time(value, tz, seconds=True)
    except ValueError:
        return value  # an unreadable time is shown as stored; `audit verify` names it


def _mac_key_if_present() -> bytes | None:
    """Return the audit MAC key when this host holds it; verification never creates it."""
    from rotator.keys import AUDIT_MAC_FILE, load_audit_mac_key
    from rotator.paths import keys_dir

    if not (keys_dir() / AUDIT_MAC_FILE).exists():
        return None
    return load_audit_mac_key()


@audit_app.command("export")
def audit_export(
    file: Annotated[Path, typer.Argument(help="Where to write the JSON Lines export.")],
    inventory: InventoryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export the trail, ending with a checkpoint signed now, for offline verification."""
    from audit.checkpoint import make_checkpoint, sync_sink
    from audit.export import export
    from audit.verify import CheckpointError
    from rotator.errors import AuditError
    from rotator.keys import AUDIT_PUBLIC_FILE, load_audit_key
    from rotator.paths import keys_dir
    from rotator.store.db import open_store

    origin, key_name, sink = _audit_config(inventory)
    public = keys_dir() / AUDIT_PUBLIC_FILE
    try:
        pem = public.read_bytes()
    except FileNotFoundError:
        raise BadInputError(f"no audit public key at {public}; run `rotate init`") from None
    store = open_store()
    # The export must end inside a signature: sign the head now (after checking every
    # entry since the last checkpoint for the tool's MAC), and copy what the sink lacks.
    with store.write() as s:
        make_checkpoint(s, load_audit_key(), origin, key_name)
    if sink is not None:
        try:
            with store.read() as s:
                sync_sink(s, sink)
        except (OSError, CheckpointError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise AuditError(
                f"the export's checkpoint could not be copied to the external sink {sink} "
                f"({why}); fix audit.external_sink in the inventory and export again"
            ) from None
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as exc:
        raise BadInputError(f"cannot write the export to {file}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as out, store.read() as s:
        summary = export(s, out, origin=origin, public_key_pem=pem, key_name=key_name)
    if as_json:
        _json(
            {
                "file": str(file),
                "entries": summary.entries,
                "checkpoints": summary.checkpoints,
                "origin": origin,
                "key_name": key_name,
            }
        )
        return
    typer.echo(
        f"exported {summary.entries} entries and {summary.checkpoints} signed checkpoints to "
        f"{file}; the last checkpoint, signed now, covers entry {summary.entries}"
    )
    typer.echo(f"verify it with: python -m audit.verify {file} --public-key {public}")


@audit_app.command("verify")
def audit_verify(
    file: Annotated[
        Path | None, typer.Argument(help="An export to verify; without it, the database.")
    ] = None,
    public_key: Annotated[
        Path | None, typer.Option("--public-key", help="PEM public key [default: the state dir's].")
    ] = None,
    checkpoints_file: Annotated[
        Path | None,
        typer.Option(
            "--checkpoints-file",
            help="The external checkpoint sink [default: audit.external_sink of the inventory].",
        ),
    ] = None,
    allow_unsigned_tail: Annotated[
        bool,
        typer.Option(
            "--allow-unsigned-tail",
            help="Accept entries after the last signed checkpoint (warned, not failed).",
        ),
    ] = False,
    inventory: InventoryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify chain, signed coverage, sink and MACs; exit 0 valid, 1 invalid, 2 usage or I/O.

    Read-only: it appends nothing to the trail and sends no notification (a notification
    is itself audited); a failure is its exit status, for cron or monitoring to act on.
    """
    from rotator.keys import load_audit_public_key

    try:
        key = load_audit_public_key(public_key)
        origin, _, sink = _audit_config(inventory)
        mac_key = _mac_key_if_present()
    except RotatorError as exc:
        _echo_err(f"error: {exc}")
        raise typer.Exit(2) from None
    if checkpoints_file is not None:
        sink = checkpoints_file
    if file is not None:
        from audit.verify import verify_export

        try:
            result = verify_export(file, key, sink, allow_unsigned_tail=allow_unsigned_tail)
        except OSError as exc:
            _echo_err(f"error: cannot read {file}: {exc.strerror}")
            raise typer.Exit(2) from None
    else:
        from audit.dbverify import verify_database
        from rotator.store.db import open_store

        with open_store().read() as s:
            result = verify_database(
                s,
                key,
                sink,
                origin=origin,
                allow_unsigned_tail=allow_unsigned_tail,
                mac_key=mac_key,
            )
        if mac_key is None:
            result.warnings.append("entry MACs not checked: this host has no audit MAC key")
    if as_json:
        _json(result.to_json())
    else:
        for problem in result.problems:
            _echo_safe(problem.line())
        for warning in result.warnings:
            _echo_safe(f"warning: {warning}")
        typer.echo(("VALID: " if result.ok else "INVALID: ") + result.summary())
    raise typer.Exit(0 if result.ok else 1)


@audit_app.command("hash")
def audit_hash(as_json: JsonOpt = False) -> None:
    """Read a value from stdin or a hidden prompt; say whether and where it appears in the trail."""
    from audit.entry import decode_entry
    from audit.fingerprint import fingerprint
    from audit.trail import iter_events
    from rotator.keys import load_fingerprint_key
    from rotator.store.db import open_store

    value = _read_value("value to look for")
    mark = fingerprint(load_fingerprint_key(), value)
    needle = mark.encode()
    hits = []
    with open_store().read() as s:
        for event in iter_events(s):
            if needle in event.entry:
                entry = decode_entry(event.entry)
                hits.append(
                    {
                        "seq": entry["seq"],
                        "time": entry["time"],
                        "type": entry["type"],
                        "secret": entry.get("secret"),
                        "environment": entry.get("environment"),
                    }
                )
    if as_json:
        _json({"fingerprint": mark, "found": bool(hits), "events": hits})
        return
    typer.echo(f"fingerprint {mark}")
    if not hits:
        typer.echo("not found in the trail")
        raise typer.Exit(1)
    for hit in hits:
        typer.echo(f"  seq {hit['seq']} {hit['time']} {hit['type']} {hit['secret']}")


@audit_app.command("report")
def audit_report(
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write.")],
    since: Annotated[
        str | None, typer.Option("--since", help="Report events from this UTC time (inclusive).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Report events before this UTC time.")
    ] = None,
    inventory: InventoryOpt = None,
) -> None:
    """Write the auditor's HTML report; exit 1 (report still written) if the trail is invalid.

    The whole trail is verified whatever the period; the period only selects what is shown.
    """
    from audit.dbverify import verify_database
    from audit.report import render_report
    from audit.trail import iter_events
    from rotator.keys import load_audit_public_key
    from rotator.store.db import open_store

    start, end = _since(since, "--since"), _since(until, "--until")
    origin, _, sink = _audit_config(inventory)
    with open_store().read() as s:
        result = verify_database(
            s, load_audit_public_key(), sink, origin=origin, mac_key=_mac_key_if_present()
        )
        page = render_report(
            iter_events(s, since=start, until=end),
            result,
            title=f"Audit report: {origin}",
            period=(start, end),
        )
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise BadInputError(f"cannot write the report to {out}: {exc.strerror}") from None
    verdict = "VALID" if result.ok else "INVALID"
    typer.echo(f"wrote {out}: the trail is {verdict} ({result.summary()})")
    raise typer.Exit(0 if result.ok else 1)


# ------------------------------------------------------------------------- examples
S = "BANDOFBAKERS_STRIPE_SECRET_KEY"
R = "BANDOFBAKERS_RESEND_API_KEY"
EXAMPLES: dict[str, list[str]] = {
    "init": ["rotate init"],
    "check": ["rotate check -i /etc/rotator/inventory.toml", "rotate check --offline"],
    "import": [
        f"rotate import {R} --ref <key id>",
        "rotate import GOOGLE_CLIENT_SECRET --env staging --ref <secret id> < value.txt",
    ],
    "status": ["rotate status", "rotate status --json"],
    "run": ["rotate run", "rotate run --no-delay --quiet", "rotate run --dry-run"],
    "plan": ["rotate plan", "rotate plan --at 2027-03-10T02:30"],
    "emergency": [
        f'rotate emergency {S} --reason "key pasted in a public issue"',
        'rotate emergency --provider resend --reason "team account leaked" --yes',
        'rotate emergency --own cloudflare --reason "tool token in a CI log" --yes',
    ],
    "supply": [f"rotate supply {S}", "rotate supply GOOGLE_CLIENT_SECRET --env staging < new.txt"],
    "confirm": [f"rotate confirm {S} --step revoke"],
    "approve": [f'rotate approve {R} --note "change CHG-123 approved"'],
    "review": [f'rotate review {R} --note "old key refused; logs clean"'],
    "rollback": [
        f'rotate rollback {R} --reason "checkout errors after promote"',
        f'rotate rollback {R} --reason "..." --yes',
    ],
    "abort": [f'rotate abort {R} --reason "wrong key supplied"'],
    "resume": [f"rotate resume {R}"],
    "show": [f"rotate show {R}", "rotate show GOOGLE_CLIENT_SECRET --env staging --json"],
    "calendar": ["rotate calendar", "rotate calendar --year 2027 --json"],
    "providers": ["rotate providers", "rotate providers --json"],
    "metrics": ["rotate metrics", "rotate metrics --out /var/lib/node_exporter/rotator.prom"],
    "demo": ["rotate demo", "rotate demo --fast"],
    "db upgrade": ["rotate db upgrade"],
    "keys rewrap": ["rotate keys rewrap --old-key-file /root/old-master.key"],
    "audit log": [f"rotate audit log --secret {R} --since 2027-01-01"],
    "audit export": ["rotate audit export trail.jsonl"],
    "audit verify": ["rotate audit verify", "rotate audit verify trail.jsonl --public-key k.pem"],
    "audit hash": ["rotate audit hash < suspect.txt"],
    "audit report": ["rotate audit report --out report.html"],
    "sandbox console stripe new-key": [
        f"rotate sandbox console stripe new-key | rotate supply {S}"
    ],
    "sandbox console stripe keys": ["rotate sandbox console stripe keys"],
    "sandbox console stripe expire": ["rotate sandbox console stripe expire key_123"],
    "sandbox console stripe expire-old": ["rotate sandbox console stripe expire-old"],
    "sandbox console google new-secret": [
        "rotate sandbox console google new-secret --env staging | "
        "rotate supply GOOGLE_CLIENT_SECRET --env staging"
    ],
    "sandbox console google secrets": ["rotate sandbox console google secrets --env staging"],
    "sandbox console google retire-old": ["rotate sandbox console google retire-old --env staging"],
    "sandbox console signals error-rate": [
        "rotate sandbox console signals error-rate --env production --rate 0.05",
        "rotate sandbox console signals error-rate --env staging --rate 0.03 --critical",
    ],
    "sandbox console signals outage": [
        "rotate sandbox console signals outage rollbar",
        "rotate sandbox console signals outage rollbar --up",
    ],
}
"""Shown under each command's help; a test checks every command has some."""


def _add_examples(group: typer.Typer, prefix: str = "") -> None:
    for info in group.registered_commands:
        name = info.name or (info.callback.__name__.rstrip("_") if info.callback else "")
        examples = EXAMPLES.get(f"{prefix}{name}")
        if examples and info.callback is not None:
            doc = (info.help or info.callback.__doc__ or "").rstrip()
            # "\b" keeps click from re-wrapping the example lines into one paragraph.
            info.help = doc + "\n\n\b\nExamples:\n" + "\n".join(f"  {e}" for e in examples)
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _add_examples(sub.typer_instance, f"{prefix}{sub.name} ")


_add_examples(app)


# ------------------------------------------------------------------------- entry point
def main() -> NoReturn:
    """Run the CLI; turn errors into one clear line and a documented exit code."""
    from rotator.redact import install_logging

    _no_core_dumps()
    _take_quiet()
    install_logging()
    try:
        # Without standalone mode click returns the exit code of `typer.Exit` instead of
        # raising it.
        code = app(prog_name="rotate", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except RotatorError as exc:
        _echo_err(f"error: {exc}")
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _echo_err("aborted")
        sys.exit(1)
    except KeyboardInterrupt:
        _echo_err(
            "interrupted: the state is safe (each step is recorded before and after it runs); "
            "run the same command again, or `rotate resume SECRET` for a failed rotation"
        )
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: a message and exit 2
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            _echo_err(f"error: {exc}")
        sys.exit(int(getattr(exc, "exit_code", 2)))
    except OSError as exc:
        known = _os_error(exc)
        if known is None:
            where = _write_traceback(exc)
            _echo_err(
                f"internal error: {type(exc).__name__}; the traceback (no values) is in {where}"
            )
            sys.exit(EXIT_INTERNAL)
        _echo_err(f"error: {known}")
        sys.exit(known.exit_code)
    except Exception as exc:
        known = _database_error(exc)
        if known is not None:
            _echo_err(f"error: {known}")
            sys.exit(known.exit_code)
        where = _write_traceback(exc)
        _echo_err(f"internal error: {type(exc).__name__}; the traceback (no values) is in {where}")
        sys.exit(EXIT_INTERNAL)


def _take_quiet() -> None:
    """Honour `--quiet`/`-q` wherever it is on the line (every command has it)."""
    global QUIET
    args = sys.argv[1:]
    end = args.index("--") if "--" in args else len(args)
    flags = [i for i, a in enumerate(args[:end]) if a in ("--quiet", "-q")]
    if not flags:
        return
    QUIET = True
    sys.argv[1:] = [a for i, a in enumerate(args) if i not in flags]
    if "--json" not in args and not any(a in ("--help", "-h") for a in args):
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)


def _no_core_dumps() -> None:
    """Set RLIMIT_CORE to 0: a core file would hold the master key and tokens in clear."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):
        pass  # not on this platform; nothing else to do


_FILE_ERRNOS = {"EACCES", "EPERM", "EROFS", "ENOSPC", "EDQUOT", "ENOENT", "EISDIR", "ENOTDIR"}


def _os_error(exc: OSError) -> RotatorError | None:
    """Name the file and the fix for an I/O error no command caught (read-only, full disk)."""
    import errno

    from rotator.errors import StateFileError

    name = errno.errorcode.get(exc.errno or 0, "")
    if name not in _FILE_ERRNOS or not exc.filename:
        return None
    return StateFileError(
        f"cannot use {exc.filename}: {exc.strerror}; make it writable by this user (or "
        "free disk space) and run the same command again"
    )


def _database_error(exc: Exception) -> RotatorError | None:
    """Name the database and the fix for an SQLAlchemy `OperationalError` (disk full, I/O)."""
    if type(exc).__name__ != "OperationalError" or "sqlalchemy" not in type(exc).__module__:
        return None
    from rotator.errors import StoreError
    from rotator.store.db import database_url, redacted

    # The driver's own message only: SQLAlchemy's adds the statement and its parameters.
    orig = getattr(exc, "orig", None)
    reason = str(orig).splitlines()[0] if orig is not None and str(orig) else "database error"
    return StoreError(
        f"the database {redacted(database_url())} failed: {reason}; nothing more was done. "
        "Free disk space or make the database writable, then run the same command again "
        "(every step resumes)"
    )


def _write_traceback(exc: BaseException) -> str:
    """Write the traceback without locals, 0600; messages are type names only."""
    import traceback

    from rotator.paths import state_dir
    from rotator.safefile import ensure_private_dir, write_private

    path = state_dir() / "last-error.log"
    # Frames only, never exception messages: a library's message may quote a value.
    frames = "".join(traceback.format_tb(exc.__traceback__))
    try:
        ensure_private_dir(path.parent)
        write_private(path, f"{type(exc).__name__}\n{frames}")
    except RotatorError as why:
        # Not written (a link, someone else's directory, a full disk): say so on stderr.
        return f"(nowhere: {why})"
    return str(path)
