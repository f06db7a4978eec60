"""Time `rotate --help`, `--version` and `status` against `python -c pass`; list heavy imports."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
from pathlib import Path

from bench.common import (
    PYTHON,
    ROOT,
    ROTATE,
    Row,
    Section,
    fmt_s,
    resend_inventory,
    rotator_home,
    run_child,
    secret_name,
    verdict,
)

HELP_GOAL = 0.15
STATUS_GOAL = 0.6
HEAVY = (
    "sqlalchemy",
    "sqlmodel",
    "pydantic",
    "alembic",
    "httpx",
    "cryptography",
    "psycopg",
    "typer",
    "rich",
)
PEERS = {"certbot": ("certbot --version", 0.5), "aws": ("aws --version", 0.8)}

_PROBE = """\
import atexit, json, sys
heavy = {heavy!r}
def _dump():
    with open({out!r}, "w") as fh:
        json.dump(sorted(m for m in heavy if m in sys.modules), fh)
atexit.register(_dump)
sys.argv = ["rotate", *{args!r}]
from rotator.cli import main
main()
"""


def _median_wall(args: list[str], runs: int, env: dict[str, str]) -> tuple[float, int]:
    times, code = [], 0
    for _ in range(runs):
        child = run_child(args, env=env, cwd=ROOT)
        times.append(child.seconds)
        code = code or child.code
    return statistics.median(times), code


def _median_cpu(args: list[str], runs: int, env: dict[str, str]) -> float:
    """Median CPU time (user + sys) of `runs` children: steadier than wall on a shared host."""
    times = []
    for _ in range(runs):
        proc = subprocess.Popen(
            args,
            env={**os.environ, **env},
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _, wait_status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(wait_status)
        times.append(usage.ru_utime + usage.ru_stime)
    return statistics.median(times)


def _imports(args: list[str], env: dict[str, str], tmp: Path) -> list[str]:
    out = tmp / "modules.json"
    code = _PROBE.format(heavy=HEAVY, out=str(out), args=args)
    run_child([PYTHON, "-c", code], env=env, cwd=ROOT)
    loaded: list[str] = json.loads(out.read_text()) if out.exists() else ["(probe failed)"]
    return loaded


def run(*, runs: int = 11, secrets: int = 100) -> Section:
    """Measure start-up of the CLI, in child processes, as a user or cron sees it."""
    section = Section("1. Start-up")
    with rotator_home("startup") as (tmp, env):
        inventory = resend_inventory(Path(env["ROTATOR_INVENTORY"]), secrets)
        _import_values(inventory, secrets)
        floor, _ = _median_wall([PYTHON, "-c", "pass"], runs, env)
        bare, _ = _median_wall([PYTHON, "-c", "import rotator.cli"], runs, env)
        help_s, help_code = _median_wall([ROTATE, "--help"], runs, env)
        version_s, version_code = _median_wall([ROTATE, "--version"], runs, env)
        status_s, status_code = _median_wall([ROTATE, "status"], runs, env)
        status_cpu = _median_cpu([ROTATE, "status"], runs, env)
        floor_cpu = _median_cpu([PYTHON, "-c", "pass"], runs, env)
        imports = {
            "--help": _imports(["--help"], env, tmp),
            "--version": _imports(["--version"], env, tmp),
            "status": _imports(["status"], env, tmp),
            "check --offline": _imports(["check", "--offline"], env, tmp),
        }
    floor_s = f"`python -c pass` {fmt_s(floor)}"
    section.rows += [
        Row("`python -c pass` (floor)", fmt_s(floor)),
        Row("`python -c 'import rotator.cli'`", fmt_s(bare), peer=floor_s),
        Row(
            "`rotate --help`",
            fmt_s(help_s),
            f"≤ {HELP_GOAL} s",
            floor_s,
            verdict(help_s <= HELP_GOAL and help_code == 0),
        ),
        Row(
            "`rotate --version`",
            fmt_s(version_s),
            f"≤ {HELP_GOAL} s",
            floor_s,
            verdict(version_s <= HELP_GOAL and version_code == 0),
        ),
        Row(
            f"`rotate status`, {secrets} secrets, SQLite",
            fmt_s(status_s),
            f"≤ {STATUS_GOAL} s",
            floor_s,
            verdict(status_s <= STATUS_GOAL and status_code == 0),
        ),
        Row(
            f"`rotate status`, {secrets} secrets, SQLite: CPU time (user + sys)",
            fmt_s(status_cpu),
            peer=f"`python -c pass` {fmt_s(floor_cpu)}",
        ),
    ]
    for peer, (command, reference) in PEERS.items():
        installed = shutil.which(peer) is not None
        if installed:
            peer_s, _ = _median_wall(command.split(), runs, env)
            section.rows.append(Row(f"`{command}` (peer)", fmt_s(peer_s), peer=floor_s))
        else:
            section.rows.append(
                Row(
                    f"`{command}` (peer)",
                    "not installed",
                    peer=f"issue 8 quotes about "
                    f"{reference} s on this kind of machine (reference, not measured)",
                    verdict="skipped",
                )
            )
    section.notes.append(
        f"Median of {runs} child processes each (`{ROTATE}`), wall time from spawn to exit. "
        f"The status inventory has {secrets} shared Resend secrets, each with an imported "
        "current value; `status` does no network."
    )
    section.notes.append(
        "`rotate status` reads a SQLite database at the current schema with the standard "
        "library's `sqlite3` (`rotator.store.status.read_status`); PostgreSQL, an older schema "
        "and a validated rotation (is its approval due?) take the full SQLModel path. The CPU "
        "row is the children's user + sys time, steadier than wall time on a shared machine."
    )
    section.notes.append(
        "Heavy modules loaded per command (from `sys.modules` at exit): "
        + "; ".join(f"`rotate {cmd}`: {', '.join(mods) or 'none'}" for cmd, mods in imports.items())
        + ". SQLAlchemy, httpx and cryptography must load only where used."
    )
    leaks = [m for m in ("sqlalchemy", "httpx", "cryptography") if m in imports["--help"]]
    section.rows.append(
        Row(
            "heavy imports in `--help` / `--version`",
            ", ".join(leaks) or "none",
            "none",
            verdict=verdict(
                not leaks
                and not any(
                    m in imports["--version"] for m in ("sqlalchemy", "httpx", "cryptography")
                )
            ),
        ),
    )
    section.rows.append(
        Row(
            "httpx loaded by `rotate status`",
            "yes" if "httpx" in imports["status"] else "no",
            "no",
            verdict=verdict("httpx" not in imports["status"]),
        ),
    )
    section.raw = {
        "floor": floor,
        "import_cli": bare,
        "help": help_s,
        "version": version_s,
        "status": status_s,
        "status_cpu": status_cpu,
        "floor_cpu": floor_cpu,
        "imports": imports,
    }
    return section


def _import_values(inventory: Path, count: int) -> None:
    """Record a current value for each secret through the library, as `rotate import` does."""
    from rotator import commands
    from rotator import inventory as inv_mod
    from rotator.engine import Engine
    from rotator.runtime import Runtime
    from rotator.secret import Secret

    engine = Engine(Runtime(inventory=inv_mod.load(inventory)))
    try:
        for i in range(1, count + 1):
            unit = engine.unit(secret_name(i), None)
            commands.import_value(engine, unit, Secret(f"re_bench_value_{i:06d}"), f"key-{i}")
    finally:
        engine.rt.close()
